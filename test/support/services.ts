// Where the real services are. `npm test` starts them on the test ports and exports these variables;
// point them elsewhere (a real MongoDB, EMQX, a managed Redis) and the same tests run there.
export const MQTT_URL = process.env.MQTT_URL ?? 'mqtt://127.0.0.1:21883';
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:26379';
export const MONGODB_URL = process.env.MONGODB_URL ?? 'mongodb://127.0.0.1:27027';

/** A name no other test file (or earlier run) uses: for databases, device ids, share groups. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}
