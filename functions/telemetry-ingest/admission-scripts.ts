import { luaScript } from '../../shared/redis-script.js';
import { PRESENCE_LUA } from './presence-repository.js';

/**
 * A device's token bucket is one string key, `tokens at noticed` (space-separated), written with its idle
 * expiry in the same `SET … PX`: one command to read it and one to write it, where a hash took three (HMGET,
 * HSET, PEXPIRE). A bucket still in the hash layout of earlier releases (a WRONGTYPE on GET) is read from its
 * fields once and overwritten as a string; buckets live seconds (burst / rate + 1 s), so that path is only
 * taken right after an upgrade. `encodeBucket` is the one writer of the layout `readBucket` parses.
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
local function encodeBucket(tokens, at, noticed)
  return tostring(tokens) .. ' ' .. tostring(at) .. ' ' .. tostring(noticed)
end
`;

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
 * A message refused by the bucket leaves no dedup mark, so its redelivery is judged afresh. Each bucket is
 * read once, before anything is written, and written once per call (if one of its messages drew on it),
 * however many of the device's messages the batch holds. Reading every device's bucket first is also what
 * makes the call safe on a Cluster without the probe (`probe: false`): a device's marks share its bucket's
 * hash tag, so a slot its node no longer serves fails the call on that read, before any write.
 * KEYS: with marks the dedup key of every item, then each distinct bucket key. ARGV: now, rate, burst, notice
 * interval, pending TTL (0: no marks), the item count, per item the position of its bucket among the bucket keys
 * (left out when there are as many bucket keys as items: each item's own, in order), the token, then per item
 * its receive time (ms).
 * Answers one letter per item — `a` admitted, `d` duplicate, `p` in progress, `l` limited, `L` limited and to be
 * told — followed by each limited item's wait (ms), in order: one string to parse for the batch, where a triple
 * per item was 300 values for a hundred.
 */
export const ADMIT = luaScript(
  `${BUCKET_LUA}
local now = tonumber(ARGV[1])
local rate = tonumber(ARGV[2]) / 1000
local burst = tonumber(ARGV[3])
local interval = tonumber(ARGV[4])
local n = tonumber(ARGV[6])
-- With marks, the first n keys are the items' marks and the buckets follow them.
local k = (tonumber(ARGV[5]) > 0) and n or 0
-- Every item its own device (as in a bridge's batch): no positions were sent, item i draws on bucket k + i.
local m = (#KEYS == k + n) and 0 or n
local idle = math.ceil(burst / rate) + 1000
local token = ARGV[7 + m]
local buckets = {}
for b = k + 1, #KEYS do
  local t, at, noticed = readBucket(KEYS[b])
  buckets[b] = { tokens = t, at = at, noticed = noticed or 0, used = false }
end
local marked = {}
local kinds, out = {}, { '' }
for i = 1, n do
  local key = k > 0 and KEYS[i]
  local kind = 'a'
  local seen = false
  if key then seen = marked[key] and 'done' or redis.call('SET', key, token, 'NX', 'GET', 'EX', ARGV[5]) end
  if seen == 'done' then kind = 'd'
  elseif seen == token then kind = 'a'
  elseif seen then kind = 'p'
  else
    local s = buckets[k + (m == 0 and i or tonumber(ARGV[6 + i]))]
    local at = math.min(tonumber(ARGV[7 + m + i]), now)
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
      out[#out + 1] = math.ceil((1 - s.tokens) / rate)
      if key then redis.call('DEL', key) end
    else
      s.tokens = s.tokens - 1
      if key then marked[key] = true end
    end
  end
  kinds[i] = kind
end
for b, s in pairs(buckets) do
  if s.used then redis.call('SET', KEYS[b], encodeBucket(s.tokens, s.at, s.noticed), 'PX', idle) end
end
out[1] = table.concat(kinds)
return out
`,
  { probe: false },
);

/**
 * Gives tokens back: ARGV[1 + i] tokens into the bucket KEYS[i] (capped at the burst ARGV[1]; its expiry kept).
 * For telemetry, which holds no marks: a failed attempt's admitted messages (5xx, retried), and a redelivery's
 * messages that turned out stored already, cost their device nothing. A bucket that expired meanwhile is full
 * again anyway. A rare path: it keeps the Cluster probe.
 */
export const REFUND = luaScript(`${BUCKET_LUA}
local burst = tonumber(ARGV[1])
for i = 1, #KEYS do
  local tokens, at, noticed = readBucket(KEYS[i])
  if tokens and at and noticed then
    redis.call('SET', KEYS[i], encodeBucket(math.min(burst, tokens + tonumber(ARGV[1 + i])), at, noticed), 'KEEPTTL')
  end
end
return #KEYS
`);

/**
 * Deletes each in-progress mark (KEYS[i]) only while it holds this attempt's token (ARGV[2 + i]); with a
 * refund (ARGV[2] = 1), the message's token goes back into its device's bucket (KEYS[n + i], capped at the
 * burst ARGV[1]; its expiry kept), so an attempt that failed on a store costs the device nothing: the Broker's
 * retries of a batch during an outage would otherwise drain the bucket and the redelivery be refused as over
 * the rate. A rare path (a failed attempt): it keeps the Cluster probe.
 */
export const RELEASE = luaScript(`${BUCKET_LUA}
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
        redis.call('SET', KEYS[n + i], encodeBucket(math.min(burst, tokens + 1), at, noticed), 'KEEPTTL')
      end
    end
  end
end
return released
`);

/**
 * After the insert was acknowledged, one call per master for the batch: marks the first ARGV[2] keys (a state
 * report's dedup mark; telemetry sends none) `done` for the dedup window (ARGV[1] seconds); marks each device of the other keys (their
 * presence hashes) seen at its ARGV[3 + position] (ms, its newest message; `PRESENCE_LUA`, TTL ARGV[3]); and answers
 * { the positions (1-based, among the devices) of those a live hub watches — the hash's `watched` field, until when
 * in Redis TIME seconds (live-hub.ts) — , the status changes as flat triples (position, status, event time) for the
 * fleet index }. Presence and the `watched` read were a call of their own (APPLY) and an EXISTS of a key per device:
 * one call and one read per device now. A hub sets the field before it subscribes, so a sample whose device was
 * not watched yet was stored before the listener read the API.
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
  applyPresence(KEYS[i], p, 'seen', ARGV[3 + i - n], ARGV[3], i - n, changes)
end
return { watched, changes }
`,
  { probe: false },
);
