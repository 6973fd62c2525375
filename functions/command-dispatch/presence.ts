import type { RedisHandle } from '../../shared/redis.js';
import { withRedis } from '../../shared/redis.js';
import { luaScript } from '../../shared/redis-script.js';
import { commandKeys } from './redis-keys.js';

/**
 * Which devices are connected, from the bridge's `io.kiot.device.connected|disconnected` events.
 *
 * command-dispatch keeps its own record instead of reading telemetry-ingest's: a capability never
 * depends on another's storage layout, and the two consume the same events. The Broker may deliver the
 * two events out of order (retries, parallel dispatch), so a change applies only if its event time is
 * not older than the one stored (compare-and-set in one Lua script).
 */
export interface PresenceStore {
  /** Returns false when a newer change was already recorded. */
  record(deviceId: string, online: boolean, atMs: number): Promise<boolean>;
  isOnline(deviceId: string): Promise<boolean>;
}

const RECORD_IF_NEWER = luaScript(`
local current = redis.call('GET', KEYS[1])
if current then
  local at = tonumber(string.match(current, '|(%d+)$'))
  if at and at > tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2])
return 1`);

export function createPresenceStore(redis: RedisHandle, prefix: string): PresenceStore {
  const key = commandKeys(prefix).presence;
  return {
    record: (deviceId, online, atMs) =>
      withRedis(async () => {
        const applied = await RECORD_IF_NEWER.run(
          await redis.client(),
          [key(deviceId)],
          [online ? 'online' : 'offline', String(Math.trunc(atMs))],
        );
        return applied === 1;
      }),
    isOnline: (deviceId) =>
      withRedis(async () => ((await (await redis.client()).get(key(deviceId))) ?? '').startsWith('online|')),
  };
}
