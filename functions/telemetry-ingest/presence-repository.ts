import type { RedisHandle } from '../../shared/redis.js';
import { groupsForOneCall, withRedis } from '../../shared/redis.js';
import { luaScript } from '../../shared/redis-script.js';
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
 * Applies presence signals (one per key; KEYS[i] takes ARGV[2i], ARGV[2i+1]; ARGV[1] is the TTL) by event time, so that events delivered out of order (a retried
 * connect after a later disconnect) cannot turn the status back: a connect or disconnect wins only if
 * it is not older than the current status; a message (`seen`) proves the device online when it is
 * newer than the last disconnect. `lastSeen` only moves forward.
 */
const APPLY = luaScript(`
for i = 1, #KEYS do
  local kind = ARGV[2 * i]
  local at = tonumber(ARGV[2 * i + 1])
  local p = redis.call('HMGET', KEYS[i], 'status', 'since', 'lastSeen')
  local since = tonumber(p[2]) or -1
  local lastSeen = tonumber(p[3]) or -1
  if kind ~= 'disconnected' and at > lastSeen then redis.call('HSET', KEYS[i], 'lastSeen', ARGV[2 * i + 1]) end
  if kind == 'seen' then
    if p[1] ~= 'online' and at > since then redis.call('HSET', KEYS[i], 'status', 'online', 'since', ARGV[2 * i + 1]) end
  elseif at >= since then
    local status = (kind == 'connected') and 'online' or 'offline'
    local field = (kind == 'connected') and 'connectedAt' or 'disconnectedAt'
    redis.call('HSET', KEYS[i], 'status', status, 'since', ARGV[2 * i + 1], field, ARGV[2 * i + 1])
  end
  redis.call('EXPIRE', KEYS[i], ARGV[1])
end
return #KEYS
`);

/** One presence signal of a device at its event time. */
export interface PresenceUpdate {
  deviceId: string;
  signal: PresenceSignal;
  at: number;
}

export interface PresenceRepository {
  apply(deviceId: string, signal: PresenceSignal, at: number): Promise<void>;
  /** Several devices' signals in one round trip (one per device: give each device its newest). */
  applyMany(updates: readonly PresenceUpdate[]): Promise<void>;
  get(deviceId: string): Promise<Presence>;
}

const iso = (value: string | undefined) => (value === undefined ? null : new Date(Number(value)).toISOString());

export function createPresenceRepository(redis: RedisHandle, keys: RedisKeys, ttlSeconds: number): PresenceRepository {
  const applyMany = (updates: readonly PresenceUpdate[]) =>
    withRedis(async () => {
      const client = await redis.client();
      await Promise.all(
        groupsForOneCall(updates, (update) => update.deviceId, redis.clustered).map((group) =>
          APPLY.run(
            client,
            group.map((update) => keys.presence(update.deviceId)),
            [ttlSeconds, ...group.flatMap((update) => [update.signal, update.at])],
          ),
        ),
      );
    });
  return {
    apply: (deviceId, signal, at) => applyMany([{ deviceId, signal, at }]),
    applyMany,
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
