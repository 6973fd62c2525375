// Run inside the stack's network namespace after a restart: waits until the stack has settled (the
// router's journal holds nothing undelivered, the bridge has nothing in flight, and the stored count of
// this run's devices has not changed for QUIET_MS), then prints the stored samples of the run as JSON.
import { MongoClient } from 'mongodb';

const env = process.env;
const quietMs = Number(env.QUIET_MS ?? 3000);
const deadline = Date.now() + Number(env.TIMEOUT_MS ?? 240000);
const expect = Number(env.EXPECT ?? 0);
const metric = async (url, name) => {
  const text = await (await fetch(url)).text();
  return Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)`, 'm').exec(text)?.[1] ?? Number.NaN);
};

const mongo = await new MongoClient(env.MONGODB_URL).connect();
const telemetry = mongo.db(env.MONGODB_DB ?? 'kiot').collection('telemetry');
const filter = { deviceId: { $regex: `^${env.RUN}-d` } };
let last = -1;
let quietSince = Date.now();
for (;;) {
  const stored = await telemetry.countDocuments(filter);
  const pending = await metric(env.ROUTER_METRICS, 'kiot_router_journal_pending_events').catch(() => Number.NaN);
  const inFlight = await metric(env.BRIDGE_METRICS, 'kiot_bridge_in_flight_messages').catch(() => Number.NaN);
  if (stored !== last || pending !== 0 || inFlight !== 0 || stored < expect) quietSince = Date.now();
  last = stored;
  if (Date.now() - quietSince >= quietMs) break;
  if (Date.now() > deadline) {
    process.stderr.write(`not settled: stored ${stored}, journal pending ${pending}, bridge in flight ${inFlight}\n`);
    break;
  }
  await new Promise((resolve) => setTimeout(resolve, 200));
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
process.stdout.write(`${JSON.stringify(docs)}\n`);
await mongo.close();
