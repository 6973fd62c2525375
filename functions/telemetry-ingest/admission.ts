import type { RedisHandle } from '../../shared/redis.js';
import { withRedis } from '../../shared/redis.js';
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

/**
 * The gate in front of every device message, in one round trip and atomically (a Lua script runs
 * alone, Redis "EVAL" docs):
 * 1. dedup: the event id was stored before → `duplicate`; it is being stored now → `in_progress`;
 * 2. a token bucket per device (rate, burst; refilled by elapsed time) → `limited`;
 * 3. else the event is marked in progress (`SET NX EX`, as powertools' idempotency does) → `admitted`.
 * A message refused by the bucket leaves no dedup mark, so its redelivery is judged afresh.
 */
const ADMIT = luaScript(`
local seen = redis.call('GET', KEYS[1])
if seen == 'done' then return {'duplicate', 0, 0} end
if seen then return {'in_progress', 0, 0} end
local now = tonumber(ARGV[1])
local rate = tonumber(ARGV[2]) / 1000
local burst = tonumber(ARGV[3])
local b = redis.call('HMGET', KEYS[2], 't', 'at', 'n')
local tokens = tonumber(b[1]) or burst
local at = tonumber(b[2]) or now
local noticed = tonumber(b[3]) or 0
if now > at then tokens = math.min(burst, tokens + (now - at) * rate) end
local idle = math.ceil(burst / rate) + 1000
if tokens < 1 then
  local notify = 0
  if now - noticed >= tonumber(ARGV[4]) then notify = 1; noticed = now end
  redis.call('HSET', KEYS[2], 't', tostring(tokens), 'at', tostring(math.max(now, at)), 'n', tostring(noticed))
  redis.call('PEXPIRE', KEYS[2], idle)
  return {'limited', math.ceil((1 - tokens) / rate), notify}
end
redis.call('HSET', KEYS[2], 't', tostring(tokens - 1), 'at', tostring(math.max(now, at)), 'n', tostring(noticed))
redis.call('PEXPIRE', KEYS[2], idle)
redis.call('SET', KEYS[1], 'pending', 'EX', ARGV[5])
return {'admitted', 0, 0}
`);

export interface AdmissionGate {
  admit(deviceId: string, eventId: string, now: number): Promise<Admission>;
  /** The effect is durable: remember the id for the dedup window. */
  complete(deviceId: string, eventId: string): Promise<void>;
  /** The event failed: forget it, so that its redelivery is processed again. */
  release(deviceId: string, eventId: string): Promise<void>;
}

export function createAdmissionGate(redis: RedisHandle, keys: RedisKeys, policy: AdmissionPolicy): AdmissionGate {
  return {
    admit: (deviceId, eventId, now) =>
      withRedis(async () => {
        const [kind, retryAfterMs, notify] = (await ADMIT.run(
          await redis.client(),
          [keys.dedup(deviceId, eventId), keys.bucket(deviceId)],
          [now, policy.ratePerSecond, policy.burst, policy.noticeIntervalMs, policy.pendingTtlSeconds],
        )) as [string, number, number];
        if (kind === 'duplicate' || kind === 'in_progress') return { kind };
        if (kind === 'limited') return { kind, retryAfterMs, notify: notify === 1 };
        return { kind: 'admitted' };
      }),
    complete: (deviceId, eventId) =>
      withRedis(async () => {
        await (await redis.client()).set(keys.dedup(deviceId, eventId), 'done', 'EX', policy.dedupTtlSeconds);
      }),
    release: (deviceId, eventId) =>
      withRedis(async () => {
        await (await redis.client()).del(keys.dedup(deviceId, eventId));
      }),
  };
}
