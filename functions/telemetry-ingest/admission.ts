import { randomUUID } from 'node:crypto';
import type { RedisHandle } from '../../shared/redis.js';
import { groupsForOneCall, isRedisUnavailable, slotOf, withRedis } from '../../shared/redis.js';
import { luaScript } from '../../shared/redis-script.js';
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
 * 3. else the event is marked in progress (`SET EX`, as powertools' idempotency does) → `admitted`; the mark
 *    holds a token of this call, so only this attempt releases it.
 * A message refused by the bucket leaves no dedup mark, so its redelivery is judged afresh. Each bucket is
 * read once and written once per call, however many of the device's messages the batch holds.
 * KEYS: the dedup key of every item, then each distinct bucket key. ARGV: now, rate, burst, notice interval,
 * pending TTL, the item count, per item the position of its bucket among the bucket keys, then the token.
 */
const ADMIT = luaScript(`
local now = tonumber(ARGV[1])
local rate = tonumber(ARGV[2]) / 1000
local burst = tonumber(ARGV[3])
local interval = tonumber(ARGV[4])
local n = tonumber(ARGV[6])
local idle = math.ceil(burst / rate) + 1000
local token = ARGV[7 + n]
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
      redis.call('SET', key, token, 'EX', ARGV[5])
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

/** Deletes each in-progress mark (KEYS[i]) only while it holds this attempt's token (ARGV[i]). */
const RELEASE = luaScript(`
local released = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[i] then released = released + redis.call('DEL', KEYS[i]) end
end
return released
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

/**
 * The gate on Redis. An attempt that fails because Redis is unreachable (a failover, a restart) cannot
 * release its marks then; the release is retried in the background until Redis answers, so the Broker's
 * redelivery is processed as soon as the store is back instead of being refused as in progress (409)
 * until the marks expire (`pendingTtlSeconds`).
 */
export function createAdmissionGate(redis: RedisHandle, keys: RedisKeys, policy: AdmissionPolicy): AdmissionGate {
  const groups = (items: readonly GateItem[]) => groupsForOneCall(items, (item) => item.deviceId, redis.clustered);
  const dedupKeys = (items: readonly GateItem[]) => items.map((item) => keys.dedup(item.deviceId, item.eventId));
  // The token of each mark this process holds: admitted, neither completed nor released yet.
  const tokens = new Map<string, string>();
  const releaseNow = (marks: readonly (readonly [string, string])[]) =>
    withRedis(async () => {
      const client = await redis.client();
      const bySlot = groupsForOneCall(marks, ([key]) => slotOf(key), redis.clustered);
      await Promise.all(
        bySlot.map((group) =>
          RELEASE.run(
            client,
            group.map(([key]) => key),
            group.map(([, token]) => token),
          ),
        ),
      );
    });
  const retries = retryInBackground(releaseNow);

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
    const token = `pending:${randomUUID()}`;
    const marks = dedupKeys(group);
    const answer = (await ADMIT.run(
      await redis.client(),
      [...marks, ...buckets.keys()],
      [
        now,
        policy.ratePerSecond,
        policy.burst,
        policy.noticeIntervalMs,
        policy.pendingTtlSeconds,
        group.length,
        ...positions,
        token,
      ],
    )) as (string | number)[];
    return group.map((_, i) => {
      const kind = answer[i * 3] as string;
      if (kind === 'admitted') tokens.set(marks[i]!, token);
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
        // Only now: if marking them done failed, the release that follows still knows the tokens.
        for (const key of dedupKeys(items)) tokens.delete(key);
      }),
    async release(items) {
      const marks: [string, string][] = [];
      for (const key of dedupKeys(items)) {
        const token = tokens.get(key);
        tokens.delete(key);
        if (token !== undefined) marks.push([key, token]);
      }
      if (marks.length === 0) return;
      try {
        await releaseNow(marks);
      } catch (error) {
        if (!isRedisUnavailable(error)) throw error;
        retries.add(marks);
      }
    },
  };
}

/** Releases kept until Redis answers again; bounded (past that, the marks expire on their own). */
function retryInBackground(
  release: (marks: readonly (readonly [string, string])[]) => Promise<void>,
  everyMs = 250,
  max = 10_000,
) {
  const pending = new Map<string, string>();
  let timer: NodeJS.Timeout | undefined;
  let running = false;
  async function flush() {
    if (running) return;
    running = true;
    try {
      const marks = [...pending];
      await release(marks);
      for (const [key] of marks) pending.delete(key);
    } catch {
      // Still unreachable: the next tick tries again.
    } finally {
      running = false;
      if (pending.size === 0 && timer) {
        clearInterval(timer);
        timer = undefined;
      }
    }
  }
  return {
    add(marks: readonly (readonly [string, string])[]) {
      for (const [key, token] of marks) if (pending.size < max) pending.set(key, token);
      timer ??= setInterval(() => void flush(), everyMs).unref();
    },
  };
}
