import { luaScript } from '../../shared/redis-script.js';
import { PRESENCE_LUA } from './presence-repository.js';

/**
 * A device's token bucket lives in its presence hash (`keys.presence`), in three fields: `tokens`, `tokensAt`
 * (the bucket's clock, ms) and `noticedAt` (the last refusal the device was told of, ms). Telemetry's one call per
 * batch (ADMIT with presence) then reads and writes one key per device for its rate, its presence and the live
 * hub's `watched` mark: one HMGET and one HSET, where a bucket key of its own cost a GET and a SET before the insert
 * and the presence hash an HMGET and an HSET after it. A hash that holds no presence (a device never seen, or not
 * registered: telemetry marks only registered devices seen) goes with its bucket: its expiry is the bucket's idle
 * time (burst / rate + 1 s), or a hub's mark's if that is later. A hash with presence keeps presence's TTL (days):
 * an old bucket in it is full again anyway (it refills by the time elapsed, capped at the burst).
 * Upgrade: the bucket keys of earlier releases (`…:rate`, a string or a hash) are no longer read; they expire
 * within seconds, and the device's bucket starts full once (at most one extra burst per device).
 */
const BUCKET_FIELDS = `'tokens', 'tokensAt', 'noticedAt'`;

/**
 * The gate in front of device messages, for a whole batch in one call (a Lua script runs alone and
 * atomically, Redis "EVAL" docs), in the order of the items:
 * 1. only with marks (state reports; a pending TTL > 0): dedup, in one command per item (`SET key token NX GET
 *    EX pending`, Redis 7.0: sets the mark only if there is none and answers the one there was): the event id
 *    was stored before → `duplicate`; it is being stored now → `in_progress`; it came earlier in the same call →
 *    `duplicate`. Telemetry has no marks (pending TTL 0, no mark keys): MongoDB's unique `_id` is its dedup
 *    (ingest-telemetry.ts), so each of its items costs only its bucket's arithmetic here;
 * 2. a token bucket per device (rate, burst; refilled by the time elapsed between the messages' receive
 *    times — the newest so far is the bucket's clock; an older message takes a token without refilling, and
 *    a time ahead of `now` counts as `now`) → `limited`, and the mark just set (if any) is deleted again;
 * 3. else `admitted`; with marks, the event stays marked in progress (the `SET … EX` of step 1, as powertools'
 *    idempotency does); the mark holds a token of this call, so only this attempt releases it. A mark that
 *    already holds this call's token is `admitted` again without a second draw: the same call sent again (a
 *    client resending after a reconnect).
 * With presence (telemetry: a presence TTL > 0 and one flag per device, `1` to mark it), each device marked is seen
 * at the receive time of its newest message in the call (`PRESENCE_LUA`) whatever becomes of its messages:
 * a message that arrived says the device was heard from, over its rate, invalid or not stored. The call answers the
 * devices a live hub watches too (read before the insert: live-feed.ts keeps that sound with the hubs' epoch).
 * A message refused by the bucket leaves no dedup mark, so its redelivery is judged afresh. Each device's hash is
 * read once, before anything is written, and written once per call (HSET of its bucket and presence fields),
 * however many of the device's messages the batch holds. Reading every device's hash first is also what makes the
 * call safe on a Cluster without the probe (`probe: false`): a device's marks share its hash's hash tag, so a slot
 * its node no longer serves fails the call on that read, before any write.
 * KEYS: with marks the dedup key of every item, then each distinct device's presence hash. ARGV: now, rate, burst,
 * notice interval, pending TTL (0: no marks), the item count, per item the position of its device among the hash
 * keys (left out when there are as many hash keys as items: each item's own, in order), the token, per item its
 * receive time (ms), then (optional) the presence TTL (s) and a string of one flag per hash key (`1`: its device is
 * marked seen, `0`: not).
 * Answers { one letter per item — `a` admitted, `d` duplicate, `p` in progress, `l` limited, `L` limited and to be
 * told — , each limited item's wait (ms) in order, the positions (1-based, among the hash keys) of the marked
 * devices a hub watches, the status changes as flat triples (position, status, event time) for the fleet index }.
 */
export const ADMIT = luaScript(
  `${PRESENCE_LUA}
local now = tonumber(ARGV[1])
local rate = tonumber(ARGV[2]) / 1000
local burst = tonumber(ARGV[3])
local interval = tonumber(ARGV[4])
local n = tonumber(ARGV[6])
-- With marks, the first n keys are the items' marks and the devices' hashes follow them.
local k = (tonumber(ARGV[5]) > 0) and n or 0
-- Every item its own device (as in a bridge's batch): no positions were sent, item i draws on hash k + i.
local m = (#KEYS == k + n) and 0 or n
local idle = math.ceil(burst / rate) + 1000
local token = ARGV[7 + m]
local ttl = tonumber(ARGV[8 + m + n]) or 0
local flags = ARGV[9 + m + n] or ''
local buckets = {}
for b = k + 1, #KEYS do
  local h = redis.call('HMGET', KEYS[b], ${BUCKET_FIELDS}, 'status', 'since', 'lastSeen', 'watched')
  buckets[b] = {
    tokens = tonumber(h[1]), at = tonumber(h[2]), noticed = tonumber(h[3]) or 0, used = false, newest = -1,
    p = { status = h[4], since = tonumber(h[5]) or -1, lastSeen = tonumber(h[6]) or -1, watched = tonumber(h[7]) or 0 },
  }
end
local marked = {}
local kinds, waits = {}, {}
for i = 1, n do
  local key = k > 0 and KEYS[i]
  local kind = 'a'
  local seen = false
  local s = buckets[k + (m == 0 and i or tonumber(ARGV[6 + i]))]
  local received = tonumber(ARGV[7 + m + i])
  if received > s.newest then s.newest, s.newestText = received, ARGV[7 + m + i] end
  if key then seen = marked[key] and 'done' or redis.call('SET', key, token, 'NX', 'GET', 'EX', ARGV[5]) end
  if seen == 'done' then kind = 'd'
  elseif seen == token then kind = 'a'
  elseif seen then kind = 'p'
  else
    local at = math.min(received, now)
    if not s.used then
      -- A device without a bucket starts full, its clock at its first message.
      s.tokens, s.at, s.used = s.tokens or burst, s.at or at, true
    end
    if at > s.at then
      s.tokens = math.min(burst, s.tokens + (at - s.at) * rate)
      s.at = at
    end
    if s.tokens < 1 then
      kind = 'l'
      if now - s.noticed >= interval then kind = 'L'; s.noticed = now end
      waits[#waits + 1] = math.ceil((1 - s.tokens) / rate)
      if key then redis.call('DEL', key) end
    else
      s.tokens = s.tokens - 1
      if key then marked[key] = true end
    end
  end
  kinds[i] = kind
end
local clock = ttl > 0 and tonumber(redis.call('TIME')[1]) or 0
local watched, changes = {}, {}
for b = k + 1, #KEYS do
  local s = buckets[b]
  local fields = {}
  if s.used then
    fields = { 'tokens', tostring(s.tokens), 'tokensAt', tostring(s.at), 'noticedAt', tostring(s.noticed) }
  end
  local expire = false
  if ttl > 0 and string.byte(flags, b - k) == 49 and s.newestText then
    if s.p.watched > clock then watched[#watched + 1] = b - k end
    expire = applyPresence(s.p, 'seen', s.newestText, b - k, changes, fields)
  end
  writePresence(KEYS[b], fields, expire, ttl)
  if s.used and not s.p.status then
    -- No presence: the hash goes with its bucket, or with a hub's mark (live-hub.ts) if that is later.
    if s.p.watched > 0 then redis.call('PEXPIRE', KEYS[b], idle, 'GT') else redis.call('PEXPIRE', KEYS[b], idle) end
  end
end
return { table.concat(kinds), waits, watched, changes }
`,
  { probe: false },
);

/**
 * Gives tokens back: ARGV[1 + i] tokens into the bucket of the device hash KEYS[i] (capped at the burst ARGV[1];
 * its expiry kept: HSET leaves it). For telemetry, which holds no marks: a failed attempt's admitted messages (5xx,
 * retried), and a redelivery's messages that turned out stored already, cost their device nothing. A bucket that
 * expired meanwhile is full again anyway. A rare path: it keeps the Cluster probe.
 */
export const REFUND = luaScript(`
local burst = tonumber(ARGV[1])
for i = 1, #KEYS do
  local tokens = tonumber(redis.call('HGET', KEYS[i], 'tokens'))
  if tokens then redis.call('HSET', KEYS[i], 'tokens', tostring(math.min(burst, tokens + tonumber(ARGV[1 + i])))) end
end
return #KEYS
`);

/**
 * Deletes each in-progress mark (KEYS[i]) only while it holds this attempt's token (ARGV[2 + i]); with a
 * refund (ARGV[2] = 1), the message's token goes back into its device's bucket (the hash KEYS[n + i], capped at
 * the burst ARGV[1]; its expiry kept), so an attempt that failed on a store costs the device nothing: the Broker's
 * retries of a batch during an outage would otherwise drain the bucket and the redelivery be refused as over
 * the rate. A rare path (a failed attempt): it keeps the Cluster probe.
 */
export const RELEASE = luaScript(`
local burst = tonumber(ARGV[1])
local refund = ARGV[2] == '1'
local n = #ARGV - 2
local released = 0
for i = 1, n do
  if redis.call('GET', KEYS[i]) == ARGV[2 + i] then
    released = released + redis.call('DEL', KEYS[i])
    if refund then
      local tokens = tonumber(redis.call('HGET', KEYS[n + i], 'tokens'))
      if tokens then redis.call('HSET', KEYS[n + i], 'tokens', tostring(math.min(burst, tokens + 1))) end
    end
  end
end
return released
`);

/**
 * After a state report's store was acknowledged, one call per master: marks the first ARGV[2] keys (the reports'
 * dedup marks) `done` for the dedup window (ARGV[1] seconds), and marks each device of the other keys (their
 * presence hashes) seen at its ARGV[3 + position] (ms, its newest message; `PRESENCE_LUA`, TTL ARGV[3]); answers
 * { the positions (1-based, among the devices) of those a live hub watches, the status changes as flat triples
 * (position, status, event time) for the fleet index }. Telemetry marks its devices seen in ADMIT instead.
 * Without the Cluster probe: every presence hash is read before the first write, and each mark shares its device's
 * hash tag, so a call refused for a slot its node no longer serves has written nothing.
 */
export const COMPLETE = luaScript(
  `${PRESENCE_LUA}
local n = tonumber(ARGV[2])
local current = {}
for i = n + 1, #KEYS do current[i] = readPresence(KEYS[i]) end
for i = 1, n do redis.call('SET', KEYS[i], 'done', 'EX', ARGV[1]) end
local now = tonumber(redis.call('TIME')[1])
local watched, changes = {}, {}
for i = n + 1, #KEYS do
  local p = current[i]
  if p.watched > now then watched[#watched + 1] = i - n end
  local fields = {}
  local expire = applyPresence(p, 'seen', ARGV[3 + i - n], i - n, changes, fields)
  writePresence(KEYS[i], fields, expire, ARGV[3])
end
return { watched, changes }
`,
  { probe: false },
);
