import type { RedisHandle } from '../../shared/redis.js';
import { groupsForOneCall, withRedis } from '../../shared/redis.js';
import { luaScript } from './lua.js';
import type { RedisKeys } from './redis-keys.js';

export type Admission =
  | { kind: 'admitted' }
  | { kind: 'duplicate' }
  /** Another delivery of the same event is being processed right now. */
  | { kind: 'in_progress' }
  /** Over the device's rate; `notify` is true for at most one refusal per notice interval. */
  | { kind: 'limited'; retryAfterMs: number; notify: boolean };

export interface AdmissionPolicy {
  ratePerSecond: number;
  burst: number;
  noticeIntervalMs: number;
  dedupTtlSeconds: number;
  /** How long an event may stay "in progress" before another delivery may take it over. */
  pendingTtlSeconds: number;
}

/** One device message at the gate: the device whose bucket it draws from, and its event id. */
export interface GateItem {
  deviceId: string;
  eventId: string;
}

/**
 * The gate in front of device messages, for a whole batch in one call (a Lua script runs alone and
 * atomically, Redis "EVAL" docs), in the order of the items:
 * 1. dedup: the event id was stored before → `duplicate`; it is being stored now → `in_progress`; it came
 *    earlier in the same call → `duplicate`;
 * 2. a token bucket per device (rate, burst; refilled by elapsed time) → `limited`;
 * 3. else the event is marked in progress (`SET EX`, as powertools' idempotency does) → `admitted`.
 * A message refused by the bucket leaves no dedup mark, so its redelivery is judged afresh. Each bucket is
 * read once and written once per call, however many of the device's messages the batch holds.
 * KEYS: the dedup key of every item, then each distinct bucket key. ARGV: now, rate, burst, notice interval,
 * pending TTL, the item count, then per item the position of its bucket among the bucket keys.
 */
const ADMIT = luaScript(`
local now = tonumber(ARGV[1])
local rate = tonumber(ARGV[2]) / 1000
local burst = tonumber(ARGV[3])
local interval = tonumber(ARGV[4])
local n = tonumber(ARGV[6])
local idle = math.ceil(burst / rate) + 1000
local buckets = {}
local marked = {}
local out = {}
for i = 1, n do
  local key = KEYS[i]
  local kind, wait, notify = 'admitted', 0, 0
  local seen = marked[key] and 'done' or redis.call('GET', key)
  if seen == 'done' then kind = 'duplicate'
  elseif seen then kind = 'in_progress'
  else
    local b = n + tonumber(ARGV[6 + i])
    local s = buckets[b]
    if not s then
      local h = redis.call('HMGET', KEYS[b], 't', 'at', 'n')
      s = { tokens = tonumber(h[1]) or burst, at = tonumber(h[2]) or now, noticed = tonumber(h[3]) or 0 }
      if now > s.at then
        s.tokens = math.min(burst, s.tokens + (now - s.at) * rate)
        s.at = now
      end
      buckets[b] = s
    end
    if s.tokens < 1 then
      kind, wait = 'limited', math.ceil((1 - s.tokens) / rate)
      if now - s.noticed >= interval then notify = 1; s.noticed = now end
    else
      s.tokens = s.tokens - 1
      redis.call('SET', key, 'pending', 'EX', ARGV[5])
      marked[key] = true
    end
  end
  out[#out + 1] = kind
  out[#out + 1] = wait
  out[#out + 1] = notify
end
for b, s in pairs(buckets) do
  redis.call('HSET', KEYS[b], 't', tostring(s.tokens), 'at', tostring(s.at), 'n', tostring(s.noticed))
  redis.call('PEXPIRE', KEYS[b], idle)
end
return out
`);

/** Marks every key `done` for the dedup window (ARGV[1] seconds). */
const COMPLETE = luaScript(`
for i = 1, #KEYS do redis.call('SET', KEYS[i], 'done', 'EX', ARGV[1]) end
return #KEYS
`);

export interface AdmissionGate {
  /** Admissions in the order of `items`: one round trip for the batch. */
  admit(items: readonly GateItem[], now: number): Promise<Admission[]>;
  /** The effects are durable: remember the ids for the dedup window. */
  complete(items: readonly GateItem[]): Promise<void>;
  /** The events failed: forget them, so that their redeliveries are processed again. */
  release(items: readonly GateItem[]): Promise<void>;
}

export function createAdmissionGate(redis: RedisHandle, keys: RedisKeys, policy: AdmissionPolicy): AdmissionGate {
  const groups = (items: readonly GateItem[]) => groupsForOneCall(items, (item) => item.deviceId, redis.clustered);
  const dedupKeys = (items: readonly GateItem[]) => items.map((item) => keys.dedup(item.deviceId, item.eventId));

  async function admitGroup(group: GateItem[], now: number): Promise<Admission[]> {
    const buckets = new Map<string, number>();
    const positions = group.map((item) => {
      const key = keys.bucket(item.deviceId);
      let position = buckets.get(key);
      if (position === undefined) {
        position = buckets.size + 1;
        buckets.set(key, position);
      }
      return position;
    });
    const answer = (await ADMIT.run(
      await redis.client(),
      [...dedupKeys(group), ...buckets.keys()],
      [
        now,
        policy.ratePerSecond,
        policy.burst,
        policy.noticeIntervalMs,
        policy.pendingTtlSeconds,
        group.length,
        ...positions,
      ],
    )) as (string | number)[];
    return group.map((_, i) => {
      const kind = answer[i * 3] as string;
      if (kind === 'duplicate' || kind === 'in_progress' || kind === 'admitted') return { kind };
      return { kind: 'limited', retryAfterMs: Number(answer[i * 3 + 1]), notify: answer[i * 3 + 2] === 1 };
    });
  }

  return {
    admit: (items, now) =>
      withRedis(async () => {
        const positions = groupsForOneCall(
          items.map((_, index) => index),
          (index) => items[index]!.deviceId,
          redis.clustered,
        );
        const answers = await Promise.all(
          positions.map((group) =>
            admitGroup(
              group.map((i) => items[i]!),
              now,
            ),
          ),
        );
        // Back into the order of `items`: a group keeps its items' order.
        const out: Admission[] = new Array(items.length);
        positions.forEach((group, g) => {
          group.forEach((index, i) => {
            out[index] = answers[g]![i]!;
          });
        });
        return out;
      }),
    complete: (items) =>
      withRedis(async () => {
        const client = await redis.client();
        await Promise.all(
          groups(items).map((group) => COMPLETE.run(client, dedupKeys(group), [policy.dedupTtlSeconds])),
        );
      }),
    release: (items) =>
      withRedis(async () => {
        const client = await redis.client();
        await Promise.all(groups(items).map((group) => client.del(...dedupKeys(group))));
      }),
  };
}
