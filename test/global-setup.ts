import { createConnection } from 'node:net';
import { MONGODB_URL, MQTT_URL, REDIS_URL } from './support/services.js';

function reachable(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url.replace(/^mongodb\+srv:/, 'mongodb:'));
  return new Promise((resolve) => {
    const socket = createConnection({ host: hostname, port: Number(port) });
    socket.setTimeout(1_000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/** Fails fast, with the fix, when the real services the integration tests need are not up. */
export default async function setup(): Promise<void> {
  const down: string[] = [];
  for (const url of [MQTT_URL, REDIS_URL, MONGODB_URL]) if (!(await reachable(url))) down.push(url);
  if (down.length > 0) {
    throw new Error(
      `services not reachable: ${down.join(', ')}. Run the whole suite with \`npm test\`, ` +
        'or start them with `KIOT_PROFILE=test npm run services -- start`.',
    );
  }
}
