// Run inside the stack's network namespace after a restart: waits until the stack has settled, then prints
// `{ settled, waitedMs, state, docs }` as JSON (`docs`: the stored samples of the run). Settled means: the
// router's journal holds nothing undelivered (so nothing is held for a Service or waiting out a backoff —
// both gauges are read too, to say which when it does not settle), the bridge has nothing in flight, at
// least EXPECT samples are stored, and all of that has held for QUIET_MS (right after it connects, the
// bridge may still be handed what Mosquitto kept for its sessions). A condition, not a clock: TIMEOUT_MS is
// only the outer bound, far beyond the longest backoff a replay can meet (a telemetry Trigger's 9th attempt
// comes 102 s after its first: backoffDelay * 2^n, scripts/router/delivery-policy.ts).
import { MongoClient } from 'mongodb';

const env = process.env;
const quietMs = Number(env.QUIET_MS ?? 3000);
const started = Date.now();
const deadline = started + Number(env.TIMEOUT_MS ?? 600_000);
const expect = Number(env.EXPECT ?? 0);
const GAUGES = {
  pending: 'kiot_router_journal_pending_events',
  held: 'kiot_router_deliveries_held',
  backingOff: 'kiot_router_deliveries_backing_off',
};
const value = (text, name) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)`, 'm').exec(text)?.[1] ?? Number.NaN);
const scrape = async (url) => (await fetch(url)).text();

const mongo = await new MongoClient(env.MONGODB_URL).connect();
const telemetry = mongo.db(env.MONGODB_DB ?? 'kiot').collection('telemetry');
const filter = { deviceId: { $regex: `^${env.RUN}-d` } };
let last = -1;
let quietSince = Date.now();
let settled = false;
let state = {};
while (!settled && Date.now() <= deadline) {
  const stored = await telemetry.countDocuments(filter);
  const router = await scrape(env.ROUTER_METRICS).catch(() => '');
  const bridge = await scrape(env.BRIDGE_METRICS).catch(() => '');
  state = {
    stored,
    ...Object.fromEntries(Object.entries(GAUGES).map(([key, name]) => [key, value(router, name)])),
    bridgeInFlight: value(bridge, 'kiot_bridge_in_flight_messages'),
    retries: router.split('\n').filter((line) => line.startsWith('kiot_router_delivery_retries_total{')),
  };
  const idle = state.pending === 0 && state.held === 0 && state.backingOff === 0 && state.bridgeInFlight === 0;
  if (stored !== last || !idle || stored < expect) quietSince = Date.now();
  last = stored;
  settled = Date.now() - quietSince >= quietMs;
  if (!settled) await new Promise((resolve) => setTimeout(resolve, 200));
}
const docs = await telemetry.find(filter, { projection: { _id: 1, deviceId: 1, msgId: 1 } }).toArray();
// Messages refused rather than stored (a dead letter each), by reason: said on stderr, so a failure shows why.
const refused = await mongo
  .db(env.MONGODB_DB ?? 'kiot')
  .collection('dead_letters')
  .aggregate([
    { $match: { 'event.subject': { $regex: `^${env.RUN}-d` } } },
    { $group: { _id: '$error.code', n: { $sum: 1 } } },
  ])
  .toArray();
if (refused.length > 0) process.stderr.write(`dead letters of the run by status: ${JSON.stringify(refused)}\n`);
process.stdout.write(`${JSON.stringify({ settled, waitedMs: Date.now() - started, state, docs })}\n`);
await mongo.close();
