import type { RedisHandle } from '../../shared/redis.js';
import { withRedis } from '../../shared/redis.js';
import { luaScript } from './lua.js';
import type { RedisKeys } from './redis-keys.js';

export interface Presence {
  status: 'online' | 'offline' | 'unknown';
  /** When the current status began (the event time of the connect, disconnect or first message). */
  since: string | null;
  lastSeen: string | null;
  connectedAt: string | null;
  disconnectedAt: string | null;
}

export type PresenceSignal = 'connected' | 'disconnected' | 'seen';

/**
 * Applies one presence signal by its event time, so that events delivered out of order (a retried
 * connect after a later disconnect) cannot turn the status back: a connect or disconnect wins only if
 * it is not older than the current status; a message (`seen`) proves the device online when it is
 * newer than the last disconnect. `lastSeen` only moves forward.
 */
const APPLY = luaScript(`
local kind = ARGV[1]
local at = tonumber(ARGV[2])
local p = redis.call('HMGET', KEYS[1], 'status', 'since', 'lastSeen')
local since = tonumber(p[2]) or -1
local lastSeen = tonumber(p[3]) or -1
if kind ~= 'disconnected' and at > lastSeen then redis.call('HSET', KEYS[1], 'lastSeen', ARGV[2]) end
if kind == 'seen' then
  if p[1] ~= 'online' and at > since then redis.call('HSET', KEYS[1], 'status', 'online', 'since', ARGV[2]) end
elseif at >= since then
  local status = (kind == 'connected') and 'online' or 'offline'
  local field = (kind == 'connected') and 'connectedAt' or 'disconnectedAt'
  redis.call('HSET', KEYS[1], 'status', status, 'since', ARGV[2], field, ARGV[2])
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
`);

export interface PresenceRepository {
  apply(deviceId: string, signal: PresenceSignal, at: number): Promise<void>;
  get(deviceId: string): Promise<Presence>;
}

const iso = (value: string | undefined) => (value === undefined ? null : new Date(Number(value)).toISOString());

export function createPresenceRepository(redis: RedisHandle, keys: RedisKeys, ttlSeconds: number): PresenceRepository {
  return {
    apply: (deviceId, signal, at) =>
      withRedis(async () => {
        await APPLY.run(await redis.client(), [keys.presence(deviceId)], [signal, at, ttlSeconds]);
      }),
    get: (deviceId) =>
      withRedis(async () => {
        const hash = await (await redis.client()).hgetall(keys.presence(deviceId));
        const status = hash.status === 'online' || hash.status === 'offline' ? hash.status : 'unknown';
        return {
          status,
          since: iso(hash.since),
          lastSeen: iso(hash.lastSeen),
          connectedAt: iso(hash.connectedAt),
          disconnectedAt: iso(hash.disconnectedAt),
        };
      }),
  };
}
