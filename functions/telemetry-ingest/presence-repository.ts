import type { RedisHandle } from '../../shared/redis.js';
import { groupsByNode, withRedis } from '../../shared/redis.js';
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
 * Presence by event time, for APPLY here, admission's ADMIT (telemetry: a batch's devices are marked seen in the
 * call that judges their rate) and COMPLETE (state reports, after the store): events delivered out of order (a
 * retried connect after a later disconnect) cannot turn the status back: a connect or disconnect wins only if it
 * is not older than the current status; a message (`seen`) proves the device online when it is newer than the last
 * disconnect. `lastSeen` only moves forward. The key expires a TTL after its last refresh, so at least a TTL less
 * an hour after the device was last seen.
 * `readPresence` also answers the live hub's `watched` field (live-hub.ts: until when, Redis TIME seconds, a hub
 * listens to the device). `applyPresence` appends the fields to write to `fields` after its first `nf` entries (the
 * caller writes them in one HSET, with whatever else the hash holds for the device: its rate bucket; one table
 * serves every key of a call, hence the count) and a status change (position, new status, event time) to
 * `changes`; it answers whether the key's TTL is to be refreshed, and the new count.
 */
export const PRESENCE_LUA = `
local function readPresence(key)
  local p = redis.call('HMGET', key, 'status', 'since', 'lastSeen', 'watched')
  return { status = p[1], since = tonumber(p[2]) or -1, lastSeen = tonumber(p[3]) or -1, watched = tonumber(p[4]) or 0 }
end
local function applyPresence(p, kind, atText, position, changes, fields, nf)
  local at = tonumber(atText)
  local fresh, lastSeen = not p.status, p.lastSeen
  if kind ~= 'disconnected' and at > p.lastSeen then
    fields[nf + 1], fields[nf + 2] = 'lastSeen', atText
    nf = nf + 2
    p.lastSeen = at
  end
  if kind == 'seen' then
    if p.status ~= 'online' and at > p.since then
      fields[nf + 1], fields[nf + 2], fields[nf + 3], fields[nf + 4] = 'status', 'online', 'since', atText
      nf = nf + 4
      p.status, p.since = 'online', at
      table.insert(changes, position) table.insert(changes, 'online') table.insert(changes, atText)
    end
  elseif at >= p.since then
    local status = (kind == 'connected') and 'online' or 'offline'
    local field = (kind == 'connected') and 'connectedAt' or 'disconnectedAt'
    fields[nf + 1], fields[nf + 2], fields[nf + 3], fields[nf + 4] = 'status', status, 'since', atText
    fields[nf + 5], fields[nf + 6] = field, atText
    nf = nf + 6
    if status ~= p.status then
      table.insert(changes, position) table.insert(changes, status) table.insert(changes, atText)
    end
    p.status, p.since = status, at
  end
  -- The TTL (the retention: days) is refreshed on a new key, a connect or disconnect, and when lastSeen enters
  -- a new hour; not on every message, where it was a third of the script's commands per device.
  return kind ~= 'seen' or fresh or math.floor(at / 3600000) ~= math.floor(lastSeen / 3600000), nf
end
local function writePresence(key, fields, nf, expire, ttl)
  if nf > 0 then redis.call('HSET', key, unpack(fields, 1, nf)) end
  if expire then redis.call('EXPIRE', key, ttl) end
end
`;

/**
 * Applies presence signals (one per key; KEYS[i] takes ARGV[2i], ARGV[2i+1]; ARGV[1] is the TTL) by event time
 * (`PRESENCE_LUA`). Returns the status changes as flat triples (key index, new status, event time) for the fleet
 * index. Every key is read before the first write: on a Cluster that read is the probe (`probe: false`), so a
 * call refused for a slot its node no longer serves has applied nothing — one applied in part would have its
 * status changes lost to the fleet index, which only hears of the changes a call returns.
 */
const APPLY = luaScript(
  `${PRESENCE_LUA}
local current = {}
for i = 1, #KEYS do
  if not current[KEYS[i]] then current[KEYS[i]] = readPresence(KEYS[i]) end
end
local changes, fields = {}, {}
for i = 1, #KEYS do
  local expire, nf = applyPresence(current[KEYS[i]], ARGV[2 * i], ARGV[2 * i + 1], i, changes, fields, 0)
  writePresence(KEYS[i], fields, nf, expire, ARGV[1])
end
return changes
`,
  { probe: false },
);

/**
 * The fleet index (KEYS[1] the online set, KEYS[2] the last applied change per device), fed with the changes
 * APPLY or admission's COMPLETE returned (ARGV: device id, status, event time, …). It runs after them, in another
 * slot on a Cluster, so two changes of one device may reach it in either order: the newer event time wins, as in
 * APPLY itself (a change of the same millisecond arriving out of order is the one case it can miss).
 */
const INDEX = luaScript(`
for i = 1, #ARGV, 3 do
  local at = tonumber(ARGV[i + 2])
  local last = tonumber(redis.call('HGET', KEYS[2], ARGV[i])) or -1
  if at >= last then
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 2])
    if ARGV[i + 1] == 'online' then redis.call('ZADD', KEYS[1], at, ARGV[i]) else redis.call('ZREM', KEYS[1], ARGV[i]) end
  end
end
return 0
`);

/** One presence signal of a device at its event time. */
interface PresenceUpdate {
  deviceId: string;
  signal: PresenceSignal;
  at: number;
}

/** Status changes as flat triples: device id, new status, event time (ms), … */
export type StatusChanges = (string | number)[];

/** A script's status changes (flat triples: device position, 1-based, among `devices`; status; time) by device id. */
export function statusChanges(changed: readonly (number | string)[], devices: readonly string[]): StatusChanges {
  const changes: StatusChanges = [];
  for (let i = 0; i < changed.length; i += 3)
    changes.push(devices[Number(changed[i]) - 1]!, changed[i + 1]!, changed[i + 2]!);
  return changes;
}

export interface PresenceRepository {
  apply(deviceId: string, signal: PresenceSignal, at: number): Promise<void>;
  /**
   * The fleet index hears of status changes applied elsewhere: telemetry marks its devices seen in admission's
   * post-insert call (COMPLETE, with `PRESENCE_LUA`), which answers the changes.
   */
  index(changes: StatusChanges): Promise<void>;
  get(deviceId: string): Promise<Presence>;
  /** Several devices' presence in one round trip, in the order asked. */
  getMany(deviceIds: readonly string[]): Promise<Presence[]>;
  /** How many devices are online now (the fleet index). */
  countOnline(): Promise<number>;
  /** Devices online now, the most recently connected first: a page from `offset`. */
  listOnline(offset: number, limit: number): Promise<{ deviceId: string; since: string }[]>;
}

const iso = (value: string | undefined) => (value === undefined ? null : new Date(Number(value)).toISOString());

function toPresence(hash: Record<string, string>): Presence {
  const status = hash.status === 'online' || hash.status === 'offline' ? hash.status : 'unknown';
  return {
    status,
    since: iso(hash.since),
    lastSeen: iso(hash.lastSeen),
    connectedAt: iso(hash.connectedAt),
    disconnectedAt: iso(hash.disconnectedAt),
  };
}

export function createPresenceRepository(redis: RedisHandle, keys: RedisKeys, ttlSeconds: number): PresenceRepository {
  const applyMany = (updates: readonly PresenceUpdate[]) =>
    withRedis(async () => {
      const client = await redis.client();
      const changes: StatusChanges = [];
      await Promise.all(
        groupsByNode(client, updates, (update) => keys.presence(update.deviceId)).map(async (group) => {
          const changed = (await APPLY.run(
            client,
            group.map((update) => keys.presence(update.deviceId)),
            [ttlSeconds, ...group.flatMap((update) => [update.signal, update.at])],
          )) as (number | string)[];
          changes.push(
            ...statusChanges(
              changed,
              group.map((update) => update.deviceId),
            ),
          );
        }),
      );
      await index(changes);
    });
  // Status changes are rare next to messages: the index is written only when one happened.
  const index = (changes: StatusChanges) =>
    changes.length === 0
      ? Promise.resolve()
      : withRedis(async () => {
          await INDEX.run(await redis.client(), [keys.online, keys.presenceSince], changes);
        });
  return {
    apply: (deviceId, signal, at) => applyMany([{ deviceId, signal, at }]),
    index,
    get: (deviceId) => withRedis(async () => toPresence(await (await redis.client()).hgetall(keys.presence(deviceId)))),
    getMany: (deviceIds) =>
      withRedis(async () => {
        const client = await redis.client();
        return Promise.all(deviceIds.map(async (id) => toPresence(await client.hgetall(keys.presence(id)))));
      }),
    countOnline: () => withRedis(async () => (await redis.client()).zcard(keys.online)),
    listOnline: (offset, limit) =>
      withRedis(async () => {
        const flat = await (await redis.client()).zrevrange(keys.online, offset, offset + limit - 1, 'WITHSCORES');
        const page: { deviceId: string; since: string }[] = [];
        for (let i = 0; i < flat.length; i += 2)
          page.push({ deviceId: flat[i]!, since: new Date(Number(flat[i + 1])).toISOString() });
        return page;
      }),
  };
}
