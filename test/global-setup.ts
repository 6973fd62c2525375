import { createConnection } from 'node:net';
import type { TestProject } from 'vitest/node';
import { parseRedisUrl } from '../shared/redis-topology.js';
import { MONGODB_URL, MQTT_URL, REDIS_URL } from './support/services.js';

/** host:port of a URL; for a Sentinel or Cluster REDIS_URL, of every seed it names. */
function addresses(url: string): string[] {
  const topology = url.startsWith('redis') ? parseRedisUrl(url) : undefined;
  if (topology?.kind === 'cluster') return topology.nodes.map(({ host, port }) => `redis://${host}:${port}`);
  if (topology?.kind === 'sentinel') return topology.sentinels.map(({ host, port }) => `redis://${host}:${port}`);
  return [url];
}

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

/**
 * Fails fast, with the fix, when the real services the integration tests need are not up. Runs once per
 * vitest project: the Redis Cluster and Sentinel projects set their own REDIS_URL (vitest.config.ts).
 */
export default async function setup(project: TestProject): Promise<void> {
  const redisUrl = project.config.env?.REDIS_URL ?? REDIS_URL;
  const down: string[] = [];
  for (const url of [MQTT_URL, ...addresses(redisUrl), MONGODB_URL]) if (!(await reachable(url))) down.push(url);
  if (down.length > 0) {
    throw new Error(
      `services not reachable: ${down.join(', ')}. Run the whole suite with \`npm test\`, ` +
        'or start them with `KIOT_PROFILE=test npm run services -- start` ' +
        '(the Redis Cluster and Sentinel: `bash scripts/redis-topologies.sh start`, then export its `env`).',
    );
  }
}
