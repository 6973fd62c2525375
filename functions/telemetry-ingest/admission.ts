import { randomUUID } from 'node:crypto';
import type { RedisClient, RedisHandle } from '../../shared/redis.js';
import { groupsByNode, isRedisUnavailable, withRedis } from '../../shared/redis.js';
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
  /**
   * When the message entered the system (the bridge's receive time, the HTTP ingest's): the device's rate is
   * judged at that time, not when the message happens to be processed. A backlog (the Broker's retries
   * during an outage, the router's replay after a crash) was within the rate when it came and stays so.
   */
  receivedAt?: Date;
}

/**
 * A device's token bucket is one string key, `tokens at noticed` (space-separated), written with its idle
 * expiry in the same `SET … PX`: one command to read it and one to write it, where a hash took three (HMGET,
 * HSET, PEXPIRE). A bucket still in the hash layout of earlier releases (a WRONGTYPE on GET) is read from its
 * fields once and overwritten as a string; buckets live seconds (burst / rate + 1 s), so that path is only
 * taken right after an upgrade.
 */
const BUCKET_LUA = `
local function readBucket(key)
  local raw = redis.pcall('GET', key)
  if type(raw) == 'string' then
    local t, at, n = string.match(raw, '^(%S+) (%S+) (%S+)$')
    return tonumber(t), tonumber(at), tonumber(n)
  elseif type(raw) == 'table' and raw.err then
    local h = redis.call('HMGET', key, 't', 'at', 'n')
    return tonumber(h[1]), tonumber(h[2]), tonumber(h[3])
  end
  return nil, nil, nil
end
`;

/**
 * The gate in front of device messages, for a whole batch in one call (a Lua script runs alone and
 * atomically, Redis "EVAL" docs), in the order of the items:
 * 1. dedup, in one command per item (`SET key token NX GET EX pending`, Redis 7.0: sets the mark only if there
 *    is none and answers the one there was): the event id was stored before → `duplicate`; it is being stored
 *    now → `in_progress`; it came earlier in the same call → `duplicate`;
 * 2. a token bucket per device (rate, burst; refilled by the time elapsed between the messages' receive
 *    times — the newest so far is the bucket's clock; an older message takes a token without refilling, and
 *    a time ahead of `now` counts as `now`) → `limited`, and the mark just set is deleted again;
 * 3. else the event stays marked in progress (the `SET … EX` of step 1, as powertools' idempotency does) →
 *    `admitted`; the mark holds a token of this call, so only this attempt releases it. A mark that already
 *    holds this call's token is `admitted` again without a second draw: the same call sent again (a client
 *    resending after a reconnect).
 * A message refused by the bucket leaves no dedup mark, so its redelivery is judged afresh. Each bucket is
 * read once and written once per call, however many of the device's messages the batch holds.
 * KEYS: the dedup key of every item, then each distinct bucket key. ARGV: now, rate, burst, notice interval,
 * pending TTL, the item count, per item the position of its bucket among the bucket keys, the token, then
 * per item its receive time (ms).
 */
const ADMIT = luaScript(`${BUCKET_LUA}
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
  local seen = marked[key] and 'done' or redis.call('SET', key, token, 'NX', 'GET', 'EX', ARGV[5])
  if seen == 'done' then kind = 'duplicate'
  elseif seen == token then kind = 'admitted'
  elseif seen then kind = 'in_progress'
  else
    local b = n + tonumber(ARGV[6 + i])
    local s = buckets[b]
    local at = math.min(tonumber(ARGV[7 + n + i]), now)
    if not s then
      local t, bat, noticed = readBucket(KEYS[b])
      s = { tokens = t or burst, at = bat or at, noticed = noticed or 0 }
      buckets[b] = s
    end
    if at > s.at then
      s.tokens = math.min(burst, s.tokens + (at - s.at) * rate)
      s.at = at
    end
    if s.tokens < 1 then
      kind, wait = 'limited', math.ceil((1 - s.tokens) / rate)
      if now - s.noticed >= interval then notify = 1; s.noticed = now end
      redis.call('DEL', key)
    else
      s.tokens = s.tokens - 1
      marked[key] = true
    end
  end
  out[#out + 1] = kind
  out[#out + 1] = wait
  out[#out + 1] = notify
end
for b, s in pairs(buckets) do
  redis.call('SET', KEYS[b], tostring(s.tokens) .. ' ' .. tostring(s.at) .. ' ' .. tostring(s.noticed), 'PX', idle)
end
return out
`);

/**
 * Deletes each in-progress mark (KEYS[i]) only while it holds this attempt's token (ARGV[2 + i]); with a
 * refund (ARGV[2] = 1), the message's token goes back into its device's bucket (KEYS[n + i], capped at the
 * burst ARGV[1]; its expiry kept), so an attempt that failed on a store costs the device nothing: the Broker's
 * retries of a batch during an outage would otherwise drain the bucket and the redelivery be refused as over
 * the rate.
 */
const RELEASE = luaScript(`${BUCKET_LUA}
local burst = tonumber(ARGV[1])
local refund = ARGV[2] == '1'
local n = #ARGV - 2
local released = 0
for i = 1, n do
  if redis.call('GET', KEYS[i]) == ARGV[2 + i] then
    released = released + redis.call('DEL', KEYS[i])
    if refund then
      local tokens, at, noticed = readBucket(KEYS[n + i])
      if tokens and at and noticed then
        local value = tostring(math.min(burst, tokens + 1)) .. ' ' .. tostring(at) .. ' ' .. tostring(noticed)
        redis.call('SET', KEYS[n + i], value, 'KEEPTTL')
      end
    end
  end
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
  /**
   * The attempt failed (a store down: 5xx, retried): forget the events and give back what their admission
   * took from their devices' rates, as if this attempt had never come, so that the redeliveries are
   * processed again.
   */
  release(items: readonly GateItem[]): Promise<void>;
  /** The events were refused for good (4xx): forget them, so that a redelivery is judged afresh; the rate stays spent. */
  forget(items: readonly GateItem[]): Promise<void>;
}

/** An in-progress mark this process holds: its key, its attempt's token, and its device's bucket. */
interface Mark {
  deviceId: string;
  key: string;
  token: string;
  bucket: string;
}

/**
 * The gate on Redis. An attempt that fails because Redis is unreachable (a failover, a restart) cannot
 * release its marks then; the release is retried in the background until Redis answers, so the Broker's
 * redelivery is processed as soon as the store is back instead of being refused as in progress (409)
 * until the marks expire (`pendingTtlSeconds`).
 */
export function createAdmissionGate(redis: RedisHandle, keys: RedisKeys, policy: AdmissionPolicy): AdmissionGate {
  // One script call per master on a Cluster (a device's dedup marks and bucket share its `{deviceId}` slot).
  const groups = <T>(client: RedisClient, items: readonly T[], deviceOf: (item: T) => string) =>
    groupsByNode(client, items, (item) => keys.bucket(deviceOf(item)));
  const dedupKeys = (items: readonly GateItem[]) => items.map((item) => keys.dedup(item.deviceId, item.eventId));
  // The token of each mark this process holds: admitted, neither completed nor released yet.
  const tokens = new Map<string, string>();
  const releaseNow = (marks: readonly Mark[], refund: boolean) =>
    withRedis(async () => {
      const client = await redis.client();
      await Promise.all(
        groups(client, marks, (mark) => mark.deviceId).map((group) =>
          RELEASE.run(
            client,
            [...group.map((mark) => mark.key), ...(refund ? group.map((mark) => mark.bucket) : [])],
            [policy.burst, refund ? 1 : 0, ...group.map((mark) => mark.token)],
          ),
        ),
      );
    });
  const retries = {
    refund: retryInBackground((marks) => releaseNow(marks, true)),
    keep: retryInBackground((marks) => releaseNow(marks, false)),
  };
  /** Takes this process's marks of `items` (each released once) and releases them, later if Redis is down. */
  async function releaseMarks(items: readonly GateItem[], refund: boolean): Promise<void> {
    const marks: Mark[] = [];
    for (const item of items) {
      const key = keys.dedup(item.deviceId, item.eventId);
      const token = tokens.get(key);
      tokens.delete(key);
      if (token !== undefined) marks.push({ deviceId: item.deviceId, key, token, bucket: keys.bucket(item.deviceId) });
    }
    if (marks.length === 0) return;
    try {
      await releaseNow(marks, refund);
    } catch (error) {
      if (!isRedisUnavailable(error)) throw error;
      (refund ? retries.refund : retries.keep).add(marks);
    }
  }

  async function admitGroup(client: RedisClient, group: GateItem[], now: number): Promise<Admission[]> {
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
    let answer: (string | number)[];
    try {
      answer = (await ADMIT.run(
        client,
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
          ...group.map((item) => {
            const at = item.receivedAt?.getTime();
            return at !== undefined && Number.isFinite(at) ? at : now;
          }),
        ],
      )) as (string | number)[];
    } catch (error) {
      // The script may have run and its answer been lost with the connection (a master killed mid-call, whose
      // writes live on in the replica that takes over): its marks would hold the redelivery off as in progress
      // (409) until they expire. Release whatever this call marked, by its token, once Redis answers again.
      if (isRedisUnavailable(error)) {
        retries.refund.add(
          group.map((item, i) => ({
            deviceId: item.deviceId,
            key: marks[i]!,
            token,
            bucket: keys.bucket(item.deviceId),
          })),
        );
      }
      throw error;
    }
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
        const client = await redis.client();
        const positions = groups(
          client,
          items.map((_, index) => index),
          (index) => items[index]!.deviceId,
        );
        const answers = await Promise.all(
          positions.map((group) =>
            admitGroup(
              client,
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
          groups(client, items, (item) => item.deviceId).map((group) =>
            COMPLETE.run(client, dedupKeys(group), [policy.dedupTtlSeconds]),
          ),
        );
        // Only now: if marking them done failed, the release that follows still knows the tokens.
        for (const key of dedupKeys(items)) tokens.delete(key);
      }),
    release: (items) => releaseMarks(items, true),
    forget: (items) => releaseMarks(items, false),
  };
}

/** Releases kept until Redis answers again; bounded (past that, the marks expire on their own). */
function retryInBackground(release: (marks: readonly Mark[]) => Promise<void>, everyMs = 250, max = 10_000) {
  const pending = new Map<string, Mark>();
  let timer: NodeJS.Timeout | undefined;
  let running = false;
  async function flush() {
    if (running) return;
    running = true;
    try {
      const marks = [...pending.values()];
      await release(marks);
      for (const mark of marks) pending.delete(mark.key);
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
    add(marks: readonly Mark[]) {
      for (const mark of marks) if (pending.size < max) pending.set(mark.key, mark);
      timer ??= setInterval(() => void flush(), everyMs).unref();
    },
  };
}
