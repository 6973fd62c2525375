import { luaScript } from '../../shared/redis-script.js';
import { PRESENCE_LUA } from './presence-repository.js';

/*
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

/**
 * The gate in front of device messages, for a whole batch in one call (a Lua script runs alone and
 * atomically, Redis "EVAL" docs). The items come grouped by device (each device's in their order; devices are
 * independent of each other, so this judges every item as the batch's order would):
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
 * read once, before anything is written, and written once per call (one HSET of the bucket and presence fields
 * that changed), however many of the device's messages the batch holds. Reading every device's hash first is also
 * what makes the call safe on a Cluster without the probe (`probe: false`): a device's marks share its hash's hash
 * tag, so a slot its node no longer serves fails the call on that read, before any write.
 * Per device the script costs one HMGET (of the five fields every device needs; `noticedAt` is read by an HGET
 * when the device is refused, `since` when its status changes) and one HSET, and little Lua besides (session 10,
 * issue 12): no table of its own (one `fields` table serves every device's HSET), the times written as the texts
 * that came (no number formatting, which was a tenth of Redis' CPU), one argument per device rather than per item.
 * A later HGET of a key the HMGET read cannot meet a slot gone elsewhere: a script runs alone.
 * KEYS: with marks the dedup key of every item (grouped by device), then each device's presence hash. ARGV: now,
 * rate, burst, notice interval, pending TTL (0: no marks), the token, the presence TTL (s; 0: no presence), a
 * string of one flag per device (`1`: marked seen), then per device its items' receive times (ms), comma-separated
 * (mostly one).
 * Answers { one letter per item, grouped by device as sent — `a` admitted, `d` duplicate, `p` in progress,
 * `l` limited, `L` limited and to be told — , each limited item's wait (ms) in that order, the positions (1-based,
 * among the devices) of the marked devices a hub watches, the status changes as flat triples (position, status,
 * event time) for the fleet index }.
 */
export const ADMIT = luaScript(
  `${PRESENCE_LUA}
local now, nowText = tonumber(ARGV[1]), ARGV[1]
local rate = tonumber(ARGV[2]) / 1000
local burst = tonumber(ARGV[3])
local interval = tonumber(ARGV[4])
local pending = ARGV[5]
local token = ARGV[6]
local ttl = tonumber(ARGV[7])
local flags = ARGV[8]
local devices = #ARGV - 8
-- With marks, the first keys are the items' marks and the devices' hashes follow them.
local k = #KEYS - devices
local idle = math.ceil(burst / rate) + 1000
local hashes = {}
for b = 1, devices do
  -- What every device needs; noticedAt (a refusal) and since (a status change) are read when needed (HGET), rarely.
  hashes[b] = redis.call('HMGET', KEYS[k + b], 'tokens', 'tokensAt', 'status', 'lastSeen', 'watched')
end
local clock = ttl > 0 and tonumber(redis.call('TIME')[1]) or 0
local marked = {}
local kinds, waits, watched, changes, fields = {}, {}, {}, {}, {}
local item = 0
for b = 1, devices do
  local h, key = hashes[b], KEYS[k + b]
  local tokens, at, noticed = tonumber(h[1]), tonumber(h[2]), false
  -- What changed, as the texts to write: the clock moves to an item's receive time (or now's).
  local used, atText, noticedText = false, false, false
  local newest, newestText = -1, false
  local times, from = ARGV[8 + b], 1
  repeat
    local comma = string.find(times, ',', from, true)
    local text = comma and string.sub(times, from, comma - 1) or (from == 1 and times or string.sub(times, from))
    from = comma and comma + 1
    local received = tonumber(text)
    if received > newest then newest, newestText = received, text end
    item = item + 1
    local kind = 'a'
    local mark = k > 0 and KEYS[item]
    local seen = false
    if mark then seen = marked[mark] and 'done' or redis.call('SET', mark, token, 'NX', 'GET', 'EX', pending) end
    if seen == 'done' then kind = 'd'
    elseif seen == token then kind = 'a'
    elseif seen then kind = 'p'
    else
      local t, tText = received, text
      if received > now then t, tText = now, nowText end
      if not used then
        -- A device without a bucket starts full, its clock at its first message.
        used = true
        tokens = tokens or burst
        if not at then at, atText = t, tText end
      end
      if t > at then
        tokens = math.min(burst, tokens + (t - at) * rate)
        at, atText = t, tText
      end
      if tokens < 1 then
        kind = 'l'
        noticed = noticed or tonumber(redis.call('HGET', key, 'noticedAt')) or 0
        if now - noticed >= interval then kind, noticed, noticedText = 'L', now, nowText end
        waits[#waits + 1] = math.ceil((1 - tokens) / rate)
        if mark then redis.call('DEL', mark) end
      else
        tokens = tokens - 1
        if mark then marked[mark] = true end
      end
    end
    kinds[item] = kind
  until not from
  local nf = 0
  if used then
    -- Whole numbers (a bucket that refilled to its burst) skip the float formatting of tostring.
    fields[1], fields[2] = 'tokens', tokens % 1 == 0 and string.format('%d', tokens) or tostring(tokens)
    nf = 2
    if atText then
      fields[3], fields[4] = 'tokensAt', atText
      nf = 4
    end
    if noticedText then
      fields[nf + 1], fields[nf + 2] = 'noticedAt', noticedText
      nf = nf + 2
    end
  end
  local expire, status = false, h[3]
  if ttl > 0 and string.byte(flags, b) == 49 then
    if h[5] and tonumber(h[5]) > clock then watched[#watched + 1] = b end
    local lastSeen = tonumber(h[4]) or -1
    if status == 'online' then
      -- applyPresence's 'seen' of a device online already, without a table: lastSeen only moves forward, and the
      -- TTL is refreshed when it enters a new hour.
      if newest > lastSeen then
        fields[nf + 1], fields[nf + 2] = 'lastSeen', newestText
        nf = nf + 2
      end
      expire = math.floor(newest / 3600000) ~= math.floor(lastSeen / 3600000)
    else
      local p = { status = status, since = tonumber(redis.call('HGET', key, 'since')) or -1, lastSeen = lastSeen }
      expire, nf = applyPresence(p, 'seen', newestText, b, changes, fields, nf)
      status = p.status
    end
  end
  writePresence(key, fields, nf, expire, ttl)
  if used and not status then
    -- No presence: the hash goes with its bucket, or with a hub's mark (live-hub.ts) if that is later.
    if (tonumber(h[5]) or 0) > 0 then redis.call('PEXPIRE', key, idle, 'GT') else redis.call('PEXPIRE', key, idle) end
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
local watched, changes, fields = {}, {}, {}
for i = n + 1, #KEYS do
  local p = current[i]
  if p.watched > now then watched[#watched + 1] = i - n end
  local expire, nf = applyPresence(p, 'seen', ARGV[3 + i - n], i - n, changes, fields, 0)
  writePresence(KEYS[i], fields, nf, expire, ARGV[3])
end
return { watched, changes }
`,
  { probe: false },
);
