import type { RedisHandle } from '../../shared/redis.js';
import { withRedis } from '../../shared/redis.js';
import { luaScript } from '../../shared/redis-script.js';
import type { RedisKeys } from './redis-keys.js';

/** One sample as the state machine sees it: its time, and which side of the thresholds it is on. */
export interface AlertObservation {
  ts: number;
  value: number;
  /** Breaches the raise condition (`value <comparison> threshold`). */
  breach: boolean;
  /** Satisfies the clear condition (hysteresis: not beyond `clearThreshold`). */
  clear: boolean;
}

/**
 * The state of one rule for one device after some samples. `seq` counts transitions (odd: raised,
 * even: cleared), `published` how many of them have been stored and emitted: the difference is an
 * outbox that survives a failure between the transition and its publication.
 */
export interface AlertStateResult {
  seq: number;
  published: number;
  /**
   * Whether this caller holds the publication lease for transitions `published+1..seq`: concurrent
   * evaluations of one device see the same unpublished transition, and only one may announce it. A
   * lease that its holder did not complete (a crash, a failed store) expires and the next evaluation
   * takes it over.
   */
  claimed: boolean;
  lastRaised: { value: number; ts: number } | undefined;
  lastCleared: { value: number; ts: number } | undefined;
}

/**
 * The whole state machine per rule×device runs in one script, so concurrent events for the same device
 * cannot both see the threshold crossed: each transition happens exactly once. Samples not newer than
 * the newest one seen are ignored (so a redelivered message cannot count twice) (consecutive means consecutive in time). A transition needs `need`
 * qualifying samples in a row spanning at least `forMs`.
 */
const EVALUATE = luaScript(`
local s = redis.call('HMGET', KEYS[1], 'seq', 'pub', 'n', 'since', 'last', 'lease')
local seq = tonumber(s[1]) or 0
local pub = tonumber(s[2]) or 0
local n = tonumber(s[3]) or 0
local since = tonumber(s[4]) or 0
local last = tonumber(s[5]) or -1
local need = tonumber(ARGV[1])
local forMs = tonumber(ARGV[2])
local now = tonumber(ARGV[4])
for i = 6, #ARGV, 4 do
  local ts = tonumber(ARGV[i])
  if ts > last then
    last = ts
    local raised = (seq % 2) == 1
    local qualifies = (not raised and ARGV[i + 1] == '1') or (raised and ARGV[i + 2] == '1')
    if qualifies then
      if n == 0 then since = ts end
      n = n + 1
      if n >= need and ts - since >= forMs then
        seq = seq + 1
        n = 0
        redis.call('HSET', KEYS[1], 'v' .. (seq % 2), ARGV[i + 3], 't' .. (seq % 2), ARGV[i])
      end
    else
      n = 0
    end
  end
end
redis.call('HSET', KEYS[1], 'seq', seq, 'n', n, 'since', since, 'last', last)
local claimed = 0
if seq > pub and (tonumber(s[6]) or 0) <= now then
  claimed = 1
  redis.call('HSET', KEYS[1], 'lease', now + tonumber(ARGV[5]))
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
local out = redis.call('HMGET', KEYS[1], 'v1', 't1', 'v0', 't0')
return {seq, pub, claimed, out[1] or '', out[2] or '', out[3] or '', out[4] or ''}
`);

/** Gives the lease back after a failed publication, so the retry need not wait for it to expire. */
const RELEASE = luaScript(`
redis.call('HDEL', KEYS[1], 'lease')
return 1
`);

const MARK_PUBLISHED = luaScript(`
local pub = tonumber(redis.call('HGET', KEYS[1], 'pub')) or 0
if tonumber(ARGV[1]) > pub then redis.call('HSET', KEYS[1], 'pub', ARGV[1]) end
redis.call('HDEL', KEYS[1], 'lease')
return 1
`);

export interface AlertStateRepository {
  evaluate(
    deviceId: string,
    ruleId: string,
    rule: { forSamples: number; forMs: number },
    observations: AlertObservation[],
    now: number,
  ): Promise<AlertStateResult>;
  /** Records transitions up to `seq` as published and ends the lease. */
  markPublished(deviceId: string, ruleId: string, seq: number): Promise<void>;
  releaseLease(deviceId: string, ruleId: string): Promise<void>;
}

const point = (value: string, ts: string) => (value === '' ? undefined : { value: Number(value), ts: Number(ts) });

export function createAlertStateRepository(
  redis: RedisHandle,
  keys: RedisKeys,
  ttlSeconds: number,
  leaseMs = 30_000,
): AlertStateRepository {
  return {
    evaluate: (deviceId, ruleId, rule, observations, now) =>
      withRedis(async () => {
        const args: (string | number)[] = [rule.forSamples, rule.forMs, ttlSeconds, now, leaseMs];
        for (const o of observations) args.push(o.ts, o.breach ? '1' : '0', o.clear ? '1' : '0', String(o.value));
        const [seq, pub, claimed, v1, t1, v0, t0] = (await EVALUATE.run(
          await redis.client(),
          [keys.alert(deviceId, ruleId)],
          args,
        )) as [number, number, number, string, string, string, string];
        return { seq, published: pub, claimed: claimed === 1, lastRaised: point(v1, t1), lastCleared: point(v0, t0) };
      }),
    markPublished: (deviceId, ruleId, seq) =>
      withRedis(async () => {
        await MARK_PUBLISHED.run(await redis.client(), [keys.alert(deviceId, ruleId)], [seq]);
      }),
    releaseLease: (deviceId, ruleId) =>
      withRedis(async () => {
        await RELEASE.run(await redis.client(), [keys.alert(deviceId, ruleId)], []);
      }),
  };
}
