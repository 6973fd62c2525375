// npm run bench:ingest — the telemetry hot path on this machine, end to end and against its limits:
//   1. limits: raw MongoDB insertMany of the same documents (bare, and into a collection indexed as `telemetry`;
//      the hour-bucket alternative), raw MQTT QoS 1
//   2. end to end: devices → Mosquitto → dist/bridge.js → dist/router.js → dist/telemetry-ingest.js → stores,
//      sustained (as fast as it goes) with the router's journal on (the durable path) and again with it off,
//      and paced at 0.03 × the raw MQTT rate of the run (or BENCH_PACED_RATE) for the latency percentiles
//   3. the storage step alone: telemetry batches POSTed straight to the function over HTTP, its best of
//      BENCH_STORAGE_RUNS runs (default 4) against raw insertMany of the same documents (the best of the run's four
//      passes after BENCH_WARMUP_PASSES unmeasured ones, default 3, each as many documents as a step run stores:
//      BENCH_RAW_DOCS, default 100,000); each batch holds the bridge's BATCH_MAX_COUNT (its default, or
//      BENCH_BRIDGE_BATCH_MAX_COUNT) messages unless BENCH_STORAGE_BATCH says otherwise
//   BENCH_ONLY=storage runs the raw insertMany limit and the storage step alone (BENCH_PROFILE_DIR: its profile).
//   The paced phase (support/ingest-paced.ts) first sends its never-seen devices' first contact for
//   BENCH_PACED_WARMUP_SECONDS (default 2; its p50/p99 printed apart, not in the target), then measures: each hop
//   (device → bridge, bridge → insert issued; the function's histograms of the phase: batch age on arrival,
//   handling, insert) and device→stored p99 against 100 ms.
// The bridge runs with its production defaults (batching on) unless BENCH_BRIDGE_* say otherwise.
// A private Mosquitto (free port) keeps the shared one's other subscribers out; MongoDB and Redis are
// MONGODB_URL / REDIS_URL (default: the test services), with a database and key prefix of its own.
// Ends with one JSON line: {"bench":"ingest","value":…,"unit":"msg/s","limit":…,"ratio":…,…}.
// `npm run bench:ingest -- --redis-cluster` compares one Redis node with a Redis Cluster (support/redis-cluster-compare.ts).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { MongoClient } from 'mongodb';
import mqtt, { type MqttClient } from 'mqtt';
import { bridgeConfigSchema } from '../../bridge/config.js';
import { freePort } from '../../test/support/ports.js';
import { bridgeBatchMeter, describeBatches } from './support/bridge-batches.js';
import { type CpuPerUnit, cpuMeter, describeCpu, pidOfServer } from './support/cpu.js';
import { productionNodeArgs } from './support/deploy-values.js';
import { measurePaced } from './support/ingest-paced.js';
import { pooled, prepareStorageStep } from './support/ingest-steps.js';
import { compareOnRedisCluster } from './support/redis-cluster-compare.js';

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const MONGODB_URL = process.env.MONGODB_URL ?? 'mongodb://127.0.0.1:27027';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:26379';
const DEVICES = env('BENCH_DEVICES', 200);
const MESSAGES = env('BENCH_MESSAGES', 30_000);
/** 0 = 0.03 × the raw MQTT rate measured in the run (issue 12's paced load). */
const PACED_RATE_SETTING = env('BENCH_PACED_RATE', 0);
const PACED_SECONDS = env('BENCH_PACED_SECONDS', 10);
/** The paced devices' first contact, at the paced rate before the measured seconds (0: measure from the first message). */
const PACED_WARMUP_SECONDS = env('BENCH_PACED_WARMUP_SECONDS', 2);
const PUBLISHERS = env('BENCH_PUBLISHERS', 10);
/** Bridge settings to try (BENCH_BRIDGE_SESSIONS, BENCH_BRIDGE_BATCH_MAX_COUNT, …); unset = the bridge's defaults. */
const bridgeOverrides: Record<string, string | undefined> = Object.fromEntries(
  Object.entries(process.env)
    .filter(([name]) => name.startsWith('BENCH_BRIDGE_') && name !== 'BENCH_BRIDGE_NODE_ARGS')
    .map(([name, value]) => [name.slice('BENCH_BRIDGE_'.length), value ?? '']),
);
/** The storage step's batches are the bridge's: its BATCH_MAX_COUNT as this run sets it (the schema's default). */
const STORAGE_BATCH = env(
  'BENCH_STORAGE_BATCH',
  bridgeConfigSchema.shape.BATCH_MAX_COUNT.parse(bridgeOverrides.BATCH_MAX_COUNT),
);
const STORAGE_CONCURRENCY = env('BENCH_STORAGE_CONCURRENCY', 16);
/** Node flags to try on telemetry-ingest beside its manifest's (e.g. GC settings); unset = as deployed. */
const FUNCTION_NODE_ARGS = (process.env.BENCH_FUNCTION_NODE_ARGS ?? '').split(' ').filter(Boolean);
/**
 * Documents in each raw insertMany pass, and messages in the storage step (BENCH_STORAGE_MESSAGES): the same work
 * for the same time, so both are sustained rates. 50,000-document passes took 0.3–0.7 s and landed anywhere between
 * 74k and 161k docs/s minutes apart (session 9): a burst of the JVM, against a step of several seconds.
 */
const RAW_DOCS = env('BENCH_RAW_DOCS', 100_000);
/** Unmeasured insertMany passes before the measured ones (BENCH_WARMUP_PASSES). */
const WARMUP_PASSES = env('BENCH_WARMUP_PASSES', 3);
const STORAGE_MESSAGES = env('BENCH_STORAGE_MESSAGES', RAW_DOCS);
/** Runs of the storage step: as many as the limit's insertMany passes (4), the best of each side compared. */
const STORAGE_RUNS = env('BENCH_STORAGE_RUNS', 4);
/** The hour-bucket pass grows its documents with every sample ($push), so it stays short (200,000: ~7 min). */
const BUCKET_DOCS = env('BENCH_BUCKET_DOCS', 50_000);
/** BENCH_ONLY=storage: the raw insertMany limit and the storage step alone (no MQTT phases), e.g. to profile it. */
const ONLY_STORAGE = process.env.BENCH_ONLY === 'storage';
const run = `bench-${Date.now().toString(36)}`;
const dbName = run.replace(/-/g, '_');
const dir = mkdtempSync(join(tmpdir(), 'kiot-bench-ingest-'));
const children: ChildProcess[] = [];
const log = (...parts: unknown[]) => process.stderr.write(`${parts.map(String).join(' ')}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what: string, condition: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(20);
  }
}

const ok = async (url: string) => (await fetch(url)).status === 200;

/** BENCH_PROFILE_DIR: every Node child writes a CPU profile there when it exits (node --cpu-prof). */
const PROFILE_DIR = process.env.BENCH_PROFILE_DIR;

function start(name: string, command: string, args: string[], childEnv: Record<string, string>): ChildProcess {
  const profile =
    PROFILE_DIR && command === process.execPath
      ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`, `--cpu-prof-name=${name}.${Date.now()}.cpuprofile`]
      : [];
  const child = spawn(command, [...profile, ...args], {
    env: { ...process.env, ...childEnv },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr?.on('data', (chunk: Buffer) => log(`[${name}] ${chunk.toString().trim()}`));
  children.push(child);
  return child;
}

/**
 * The document the function stores for one sample, for the raw insert limit: the storage step's samples carry a
 * device time and a msgId, so their `_id` is `device~msgId~ts` (telemetry-repository.ts `sampleId`).
 */
const sampleDoc = (i: number) => {
  const deviceId = `${run}-d${i % DEVICES}`;
  const ts = new Date();
  const msgId = `m${i}`;
  return {
    _id: `${deviceId}~${msgId}~${ts.getTime()}`,
    deviceId,
    ts,
    metrics: { temp: 20 + (i % 10), hum: 40 },
    eventId: `${run}-raw-${i}`,
    receivedAt: new Date(),
    ingestedAt: new Date(),
    msgId,
  };
};

async function rawMongo(mongo: MongoClient): Promise<{
  raw: number;
  indexed: number;
  warm: number;
  indexedWarm: number;
  bucket: number;
  serverCpu: Record<string, number>;
  passCpu: Record<string, CpuPerUnit>;
}> {
  const db = mongo.db(dbName);
  const batch = 500;
  // Each limit also as the server's CPU per document: a 1 s wall figure swings with the load and the JVM's state.
  const serverCpu: Record<string, number> = {};
  const passCpu: Record<string, CpuPerUnit> = {};
  const insertAll = async (collection: string, offset: number) => {
    // The documents are built before the clock starts, as the storage step's requests are encoded before its own
    // (support/ingest-steps.ts): each side times the inserts (the driver's BSON and the server), not the bench's
    // making of its load.
    const batches: ReturnType<typeof sampleDoc>[][] = Array.from({ length: RAW_DOCS / batch }, (_, b) =>
      Array.from({ length: batch }, (_, k) => sampleDoc(offset + b * batch + k)),
    );
    const meter = cpuMeter({ bench: process.pid, mongo: pidOfServer(MONGODB_URL) });
    const ms = await pooled(batches.length, 4, async (b) => {
      await db.collection<{ _id: string }>(collection).insertMany(batches[b]!, { ordered: false });
    });
    const cpu = meter.perUnit(RAW_DOCS);
    serverCpu[collection] = cpu.mongo ?? NaN;
    passCpu[collection] = cpu;
    // Each pass's documents leave the server before the next, so every pass and the step meet a server holding the
    // same documents. The JVM still carries what it allocated: its CPU per document grows pass after pass either way
    // (kept: 9 → 13 → 13 → 17 µs; dropped: 8 → 11 → 12 → 14, session 10), which the best-pass limit absorbs.
    await db.collection(collection).drop();
    return ms;
  };
  // Unmeasured passes first, so that the limit is the server warmed up, not JIT-compiling: a freshly started
  // mongo-java-server took 17-30 µs per document in its first 100,000 (session 11).
  for (let pass = 0; pass < WARMUP_PASSES; pass += 1) await insertAll('raw_warmup', (4 + pass) * RAW_DOCS);
  const rawMs = await insertAll('raw_insert', 0);
  // The same inserts into a collection indexed as the function's `telemetry` (device_ts and the ts TTL index,
  // telemetry-repository.ts): what the storage step's own inserts cost the server. Measured second, on a JVM the
  // first warmed, so if anything it is flattered. Printed beside the limit above; the JSON's limit is unchanged.
  const indexAsTelemetry = async (name: string) => {
    const indexed = db.collection<{ _id: string }>(name);
    await indexed.createIndex({ deviceId: 1, ts: 1, _id: 1 }, { name: 'device_ts' });
    await indexed.createIndex({ ts: 1 }, { name: 'ts_ttl', expireAfterSeconds: 30 * 24 * 3600 });
  };
  await indexAsTelemetry('raw_insert_indexed');
  const indexedMs = await insertAll('raw_insert_indexed', RAW_DOCS);
  // The bare inserts again, on the JVM as warm as for the indexed ones: the first figure is often a cold server's.
  const warmMs = await insertAll('raw_insert_warm', 2 * RAW_DOCS);
  // And the indexed ones again, on a JVM as warm as the second bare pass's.
  await indexAsTelemetry('raw_insert_indexed_warm');
  const indexedWarmMs = await insertAll('raw_insert_indexed_warm', 3 * RAW_DOCS);
  // The MongoDB IoT bucket pattern: one document per device and hour, samples pushed into it.
  const hour = Math.floor(Date.now() / 3_600_000);
  const bucketMs = await pooled(BUCKET_DOCS / batch, 4, async (b) => {
    const ops = Array.from({ length: batch }, (_, k) => {
      const doc = sampleDoc(b * batch + k);
      return {
        updateOne: {
          filter: { _id: `${doc.deviceId}:${hour}` },
          update: { $push: { samples: { ts: doc.ts, metrics: doc.metrics, id: doc._id } }, $inc: { count: 1 } },
          upsert: true,
        },
      };
    });
    await db.collection<{ _id: string }>('bucket_insert').bulkWrite(ops as never, { ordered: false });
  });
  return {
    raw: (RAW_DOCS / rawMs) * 1000,
    indexed: (RAW_DOCS / indexedMs) * 1000,
    warm: (RAW_DOCS / warmMs) * 1000,
    indexedWarm: (RAW_DOCS / indexedWarmMs) * 1000,
    bucket: (BUCKET_DOCS / bucketMs) * 1000,
    serverCpu,
    passCpu,
  };
}

async function rawMqtt(url: string, total: number): Promise<number> {
  const subscribers = await Promise.all(
    Array.from({ length: 8 }, (_, i) =>
      mqtt.connectAsync(url, { protocolVersion: 5, clientId: `${run}-rs${i}`, clean: true }),
    ),
  );
  let received = 0;
  for (const s of subscribers) {
    s.on('message', () => (received += 1));
    await s.subscribeAsync(`$share/${run}/raw/+`, { qos: 1 });
  }
  const publishers = await Promise.all(
    Array.from({ length: PUBLISHERS }, () => mqtt.connectAsync(url, { protocolVersion: 5 })),
  );
  const started = performance.now();
  const payload = JSON.stringify({ ts: Date.now(), metrics: { temp: 21, hum: 40 }, msgId: 'x' });
  await pooled(total, PUBLISHERS * 20, async (i) => {
    await publishers[i % PUBLISHERS]!.publishAsync(`raw/${i % DEVICES}`, payload, { qos: 1 });
  });
  await until('raw MQTT messages received', async () => received >= total);
  const rate = (total / (performance.now() - started)) * 1000;
  await Promise.all([...subscribers, ...publishers].map((c) => c.endAsync()));
  return rate;
}

async function publishAll(
  clients: MqttClient[],
  ids: string[],
  count: number,
  prefix: string,
  ratePerSecond?: number,
): Promise<void> {
  const started = performance.now();
  await pooled(count, ratePerSecond ? 50 : PUBLISHERS * 20, async (i) => {
    if (ratePerSecond) {
      const due = started + (i * 1000) / ratePerSecond;
      if (due > performance.now()) await sleep(due - performance.now());
    }
    const payload = JSON.stringify({
      ts: Date.now(),
      metrics: { temp: 20 + (i % 10), hum: 40 },
      msgId: `${prefix}${i}`,
    });
    await clients[i % clients.length]!.publishAsync(`devices/${ids[i % ids.length]}/telemetry`, payload, { qos: 1 });
  });
}

async function metricValue(url: string, pattern: RegExp): Promise<number> {
  return Number(pattern.exec(await (await fetch(url)).text())?.[1] ?? NaN);
}

async function main(): Promise<void> {
  const [mqttPort, fnPort, routerPort, bridgePort, dlqPort] = await Promise.all([
    freePort(),
    freePort(),
    freePort(),
    freePort(),
    freePort(),
  ]);
  writeFileSync(
    join(dir, 'mosquitto.conf'),
    `listener ${mqttPort} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 200000\nmax_inflight_messages 100\n` +
      // As npm start's broker (scripts/services.sh): no Nagle delay (~40 ms) on a session whose PUBACKs wait.
      'set_tcp_nodelay true\n',
  );
  const broker = spawn(process.env.MOSQUITTO_BIN ?? '/usr/sbin/mosquitto', ['-c', join(dir, 'mosquitto.conf')], {
    stdio: 'ignore',
  });
  children.push(broker);
  const mqttUrl = `mqtt://127.0.0.1:${mqttPort}`;
  await until(
    'mosquitto',
    async () => (await mqtt.connectAsync(mqttUrl, { reconnectPeriod: 0 }).then((c) => c.endAsync())) === undefined,
  );

  const mongo = await new MongoClient(MONGODB_URL).connect();
  const db = mongo.db(dbName);
  const limits = await rawMongo(mongo);
  log(
    `raw insertMany ${limits.raw.toFixed(0)} docs/s; into a collection indexed as telemetry ${limits.indexed.toFixed(0)} ` +
      `docs/s; bare again after it ${limits.warm.toFixed(0)} docs/s; indexed again ${limits.indexedWarm.toFixed(0)} docs/s; hour buckets ($push upserts) ${limits.bucket.toFixed(0)} samples/s`,
  );
  log(
    `  CPU per document (${RAW_DOCS} per pass): bare ${describeCpu(limits.passCpu.raw_insert!)}; indexed ` +
      `${describeCpu(limits.passCpu.raw_insert_indexed!)}; bare again ${describeCpu(limits.passCpu.raw_insert_warm!)}; indexed again ` +
      describeCpu(limits.passCpu.raw_insert_indexed_warm!),
  );
  await db.collection('bucket_insert').drop();
  const mqttRaw = ONLY_STORAGE ? NaN : await rawMqtt(mqttUrl, MESSAGES);
  if (!ONLY_STORAGE) log(`raw MQTT QoS 1 ${mqttRaw.toFixed(0)} msg/s`);

  const ids = Array.from({ length: DEVICES }, (_, i) => `${run}-d${i}`);
  const paced = Array.from({ length: DEVICES }, (_, i) => `${run}-p${i}`);
  const now = new Date();
  await db.collection<{ _id: string }>('devices').insertMany(
    [...ids, ...paced].map((id) => ({
      _id: id,
      tags: [],
      metadata: {},
      status: 'active',
      credential: { hash: 'x', rotatedAt: now },
      createdAt: now,
      updatedAt: now,
      version: 1,
    })),
  );

  const ingress = `http://127.0.0.1:${routerPort}/kiot/default`;
  // The Knative Service's own command line (its heap flags under the 256 MiB limit), as deployed.
  const fn = start(
    'telemetry-ingest',
    process.execPath,
    [...productionNodeArgs('telemetry-ingest'), ...FUNCTION_NODE_ARGS, 'dist/telemetry-ingest.js'],
    {
      PORT: String(fnPort),
      MONGODB_URL,
      MONGODB_DB: dbName,
      REDIS_URL,
      REDIS_PREFIX: `kiot:${run}`,
      K_SINK: ingress,
      DEAD_LETTER_SINK: `http://127.0.0.1:${dlqPort}/`,
      LOG_LEVEL: 'warn',
      RATE_LIMIT_PER_SECOND: '100000',
      RATE_LIMIT_BURST: '100000',
      NODE_ENV: 'production',
    },
  );
  // The router journals every event (fdatasync, group commit) before its 202: the durable path, as npm start runs it.
  const routerEnv = {
    PORT: String(routerPort),
    KNATIVE_DIR: 'knative',
    LOG_LEVEL: 'warn',
    ROUTER_CONCURRENCY: process.env.BENCH_ROUTER_CONCURRENCY ?? '100', // = containerConcurrency of the Knative Service
    ROUTER_SERVICES: `telemetry-ingest=http://127.0.0.1:${fnPort},mqtt-bridge=http://127.0.0.1:${bridgePort}`,
    ROUTER_DEAD_LETTER_FILE: join(dir, 'dead-letters.jsonl'),
  };
  let routerChild = start('router', process.execPath, ['dist/router.js'], routerEnv);
  // The bridge's command line as deployed too (its heap flags), unless BENCH_BRIDGE_NODE_ARGS says otherwise.
  const bridgeNodeArgs = process.env.BENCH_BRIDGE_NODE_ARGS?.split(' ').filter(Boolean) ?? productionNodeArgs('bridge');
  const bridgeChild = start('bridge', process.execPath, [...bridgeNodeArgs, 'dist/bridge.js'], {
    PORT: String(bridgePort),
    MQTT_URL: mqttUrl,
    K_SINK: ingress,
    DEAD_LETTER_SINK: `http://127.0.0.1:${dlqPort}/`,
    LOG_LEVEL: 'warn',
    BRIDGE_CLIENT_ID: `${run}-bridge`,
    BRIDGE_SHARE_GROUP: run,
    ...bridgeOverrides,
    BRIDGE_SESSION_EXPIRY_S: '300',
  });
  await until('telemetry-ingest healthy', () => ok(`http://127.0.0.1:${fnPort}/healthz`));
  await until('router healthy', () => ok(`http://127.0.0.1:${routerPort}/healthz`));
  await until('bridge healthy', () => ok(`http://127.0.0.1:${bridgePort}/healthz`));

  // Counted by the function (samples MongoDB acknowledged), not by scanning the collection: a scan would
  // compete with the inserts it measures (mongo-java-server runs each command alone per collection).
  const fnMetrics = `http://127.0.0.1:${fnPort}/metrics`;
  const storedTotal = () => metricValue(fnMetrics, /kiot_telemetry_samples_stored_total (\d+)/);
  const measureEndToEnd = async () => {
    const clients = await Promise.all(
      Array.from({ length: PUBLISHERS }, () => mqtt.connectAsync(mqttUrl, { protocolVersion: 5 })),
    );
    const telemetry = db.collection('telemetry');

    // Warm-up (JIT, connection pools, device cache), then the sustained run.
    await publishAll(clients, ids, 2_000, 'w');
    await until('warm-up stored', async () => (await storedTotal()) >= 2_000);
    // Where the CPU goes per message end to end; this process is the devices.
    const pids = {
      bench: process.pid,
      mosquitto: broker.pid,
      bridge: bridgeChild.pid,
      router: routerChild.pid,
      'telemetry-ingest': fn.pid,
      mongo: pidOfServer(MONGODB_URL),
      redis: pidOfServer(REDIS_URL),
    };
    const e2eMeter = cpuMeter(pids);
    const batchMeter = await bridgeBatchMeter(`http://127.0.0.1:${bridgePort}/metrics`);
    const started = performance.now();
    await publishAll(clients, ids, MESSAGES, 's');
    await until('sustained run stored', async () => (await storedTotal()) >= 2_000 + MESSAGES, 600_000);
    const e2e = (MESSAGES / (performance.now() - started)) * 1000;
    const batches = await metricValue(fnMetrics, /kiot_telemetry_batch_items_count (\d+)/);
    log(
      `end to end ${e2e.toFixed(0)} msg/s stored (${(e2e / mqttRaw).toFixed(3)} of raw MQTT QoS 1); ` +
        `${batches} batches so far, ${((2_000 + MESSAGES) / batches).toFixed(1)} messages per batch`,
    );
    const e2eCpu = e2eMeter.perUnit(MESSAGES);
    const e2eBatches = await batchMeter.since();
    log(`  the bridge's batches in it: ${describeBatches(e2eBatches)}`);
    log(
      `  CPU per message: ${describeCpu(e2eCpu)}; ${availableParallelism()} cores ⇒ at most ` +
        `${Math.round((availableParallelism() * 1e6) / e2eCpu.total!)} msg/s`,
    );

    // The same sustained run without the durable path: the router restarted with its journal off (accepted
    // events in memory only, like Knative's InMemoryChannel), then with it on again for the rest.
    const restartRouter = async (journal: 'on' | 'off') => {
      const exited = new Promise((resolve) => routerChild.once('exit', resolve));
      routerChild.kill('SIGTERM');
      await exited;
      routerChild = start('router', process.execPath, ['dist/router.js'], { ...routerEnv, ROUTER_JOURNAL: journal });
      await until('router healthy', () => ok(`http://127.0.0.1:${routerPort}/healthz`));
    };
    await restartRouter('off');
    const volatileStarted = performance.now();
    await publishAll(clients, ids, MESSAGES, 'v');
    await until(
      'run without the durable path stored',
      async () => (await storedTotal()) >= 2_000 + 2 * MESSAGES,
      600_000,
    );
    const volatile = (MESSAGES / (performance.now() - volatileStarted)) * 1000;
    log(
      `without the durable path (router journal off) ${volatile.toFixed(0)} msg/s stored; with it ` +
        `${e2e.toFixed(0)} msg/s (${(e2e / volatile).toFixed(2)} of that)`,
    );
    await restartRouter('on');

    // Paced: latency from the device's publish (`ts`) to the issue of the acknowledged insert (`ingestedAt`), per
    // hop (the bridge's receive time is the item's `time`, stored as `receivedAt`), plus the p99 of the inserts
    // of the phase alone (its acknowledgement is what makes a sample stored); first contact apart (support/ingest-paced.ts).
    const PACED_RATE = PACED_RATE_SETTING > 0 ? PACED_RATE_SETTING : Math.round(0.03 * mqttRaw);
    const pacedResult = await measurePaced({
      publish: (devices, count, prefix, rate) => publishAll(clients, devices, count, prefix, rate),
      mark: async () => {
        const base = await storedTotal();
        return (count) => until('paced messages stored', async () => (await storedTotal()) >= base + count, 300_000);
      },
      metricsUrl: fnMetrics,
      telemetry,
      devices: paced,
      rate: PACED_RATE,
      seconds: PACED_SECONDS,
      warmUpSeconds: PACED_WARMUP_SECONDS,
      log,
    });
    await Promise.all(clients.map((c) => c.endAsync()));
    return { e2e, e2eCpu, e2eBatches, volatile, pacedRate: PACED_RATE, paced: pacedResult };
  };
  const endToEnd = ONLY_STORAGE ? undefined : await measureEndToEnd();
  const step = (messages: number, prefix: string) =>
    prepareStorageStep({
      url: `http://127.0.0.1:${fnPort}/`,
      ids,
      messages,
      batchSize: STORAGE_BATCH,
      concurrency: STORAGE_CONCURRENCY,
      prefix: `${run}-${prefix}`,
    });
  if (ONLY_STORAGE)
    await step(2_000, 'sw').send(); // warm-up: JIT, pools, the device cache
  // The end-to-end phases' samples leave the server, as each raw pass's did before the next: the step meets a
  // server holding what the passes met, not ~75,000 more documents.
  else await db.collection('telemetry').deleteMany({});
  const stepCpu = () =>
    cpuMeter({
      bench: process.pid,
      'telemetry-ingest': fn.pid,
      mongo: pidOfServer(MONGODB_URL),
      redis: pidOfServer(REDIS_URL),
    });
  // The function's group commit: how many inserts the step's messages became (fewer, larger ones cost less per doc).
  const inserts = () => metricValue(fnMetrics, /kiot_telemetry_group_commit_docs_count (\d+)/);
  // As many runs of the step as the limit has passes, and the best of each side compared: the best of four passes
  // against one run of the step measured the machine's noise (the same code swung 0.37–0.68 in session 11) in the
  // limit's favour. Each run's documents leave the server before the next, as each pass's do.
  const stepRuns: { rate: number; cpu: CpuPerUnit; inserts: number }[] = [];
  for (let attempt = 0; attempt < STORAGE_RUNS; attempt += 1) {
    if (attempt > 0) await db.collection('telemetry').deleteMany({});
    const prepared = step(STORAGE_MESSAGES, `st${attempt}`);
    const meter = stepCpu();
    const insertsBefore = await inserts();
    const rate = await prepared.send();
    const cpu = meter.perUnit(STORAGE_MESSAGES);
    const count = (await inserts()) - insertsBefore;
    stepRuns.push({ rate, cpu, inserts: count });
    log(
      `storage step run ${attempt + 1} of ${STORAGE_RUNS} (batches of ${STORAGE_BATCH}, ${STORAGE_CONCURRENCY} at ` +
        `once, straight to the function) ${rate.toFixed(0)} msg/s; CPU per message: ${describeCpu(cpu)}; ` +
        `${count} inserts, ${(STORAGE_MESSAGES / count).toFixed(0)} docs each`,
    );
  }
  const best = stepRuns.reduce((a, b) => (b.rate > a.rate ? b : a));
  const storage = best.rate;
  const storageCpu = best.cpu;
  const storageInserts = best.inserts;
  // The storage target's limit is the best of the run's four insertMany passes: the first one often meets a JVM
  // that has not warmed up yet (13k–129k docs/s between runs, session 8), and a cold server's low figure would let
  // the step pass a target it misses against the same server warm.
  const storageLimit = Math.max(limits.raw, limits.indexed, limits.warm, limits.indexedWarm);
  // The passes that do the step's own server work: the same documents into a collection indexed as `telemetry`.
  const sameIndexesLimit = Math.max(limits.indexed, limits.indexedWarm);
  log(
    `storage step: ${storage.toFixed(0)} msg/s (best of ${STORAGE_RUNS} runs); limit (best raw insertMany pass, same run) ` +
      `${storageLimit.toFixed(0)} docs/s; ratio ${(storage / storageLimit).toFixed(2)} (target ≥ 0.5); against the ` +
      `first pass ${limits.raw.toFixed(0)} docs/s: ${(storage / limits.raw).toFixed(2)}; against raw insertMany into ` +
      `an indexed collection ${limits.indexed.toFixed(0)} docs/s: ${(storage / limits.indexed).toFixed(2)}; against the ` +
      `best indexed pass ${sameIndexesLimit.toFixed(0)} docs/s: ${(storage / sameIndexesLimit).toFixed(2)}`,
  );
  const peakRss = (pid: number | undefined) =>
    Math.round(Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024);
  const rss = {
    bridge: peakRss(bridgeChild.pid),
    router: peakRss(routerChild.pid),
    'telemetry-ingest': peakRss(fn.pid),
  };
  log(
    `peak RSS (VmHWM): ${Object.entries(rss)
      .map(([name, mb]) => `${name} ${mb} MB`)
      .join(', ')}`,
  );

  await db.dropDatabase();
  await mongo.close();
  const round = (n: number) => Math.round(n * 100) / 100;
  const e2e = endToEnd?.e2e ?? NaN;
  if (endToEnd)
    log(
      `stored rate: ${e2e.toFixed(0)} msg/s; limit (raw MQTT QoS 1, same run) ${mqttRaw.toFixed(0)} msg/s; ` +
        `ratio ${(e2e / mqttRaw).toFixed(2)} (target ≥ 0.15)`,
    );
  const result = {
    bench: 'ingest',
    value: Math.round(e2e),
    unit: 'msg/s',
    // Issue 12: the stored rate against the raw MQTT QoS 1 rate of the same run (target ≥ 0.15).
    limit: Math.round(mqttRaw),
    ratio: round(e2e / mqttRaw),
    insert_limit: Math.round(limits.raw),
    // The stored rate of the same run with the router's journal off, and the durable path's share of it.
    value_without_durable: Math.round(endToEnd?.volatile ?? NaN),
    durable_ratio: round(e2e / (endToEnd?.volatile ?? NaN)),
    paced_rate: endToEnd?.pacedRate ?? null,
    p50_ms_paced: endToEnd?.paced.measured.p50 ?? null,
    p99_ms_paced: endToEnd?.paced.measured.p99 ?? null,
    // The paced devices' first contact, measured before (BENCH_PACED_WARMUP_SECONDS) and not in the target.
    paced_first_contact_s: endToEnd?.paced.firstContact ? PACED_WARMUP_SECONDS : 0,
    p50_ms_first_contact: endToEnd?.paced.firstContact?.p50 ?? null,
    p99_ms_first_contact: endToEnd?.paced.firstContact?.p99 ?? null,
    mqtt_raw: Math.round(mqttRaw),
    rss_mb: rss,
    // The storage step (batches straight to the function) against the best raw insertMany pass (target ≥ 0.5).
    storage_step: Math.round(storage),
    storage_step_runs: stepRuns.map((attempt) => Math.round(attempt.rate)),
    storage_limit: Math.round(storageLimit),
    storage_ratio: round(storage / storageLimit),
    storage_ratio_first_pass: round(storage / limits.raw),
    // The same limit measured into a collection with the telemetry collection's indexes, and the ratio to it.
    insert_limit_indexed: Math.round(limits.indexed),
    storage_ratio_indexed: round(storage / limits.indexed),
    insert_limit_warm: Math.round(limits.warm),
    insert_limit_indexed_warm: Math.round(limits.indexedWarm),
    storage_ratio_same_indexes: round(storage / sameIndexesLimit),
    insert_limit_mongo_cpu_us: limits.serverCpu,
    storage_batch: STORAGE_BATCH,
    storage_concurrency: STORAGE_CONCURRENCY,
    storage_inserts: storageInserts,
    bucket_limit: Math.round(limits.bucket),
    cpu_us_per_msg: endToEnd?.e2eCpu ?? null,
    // The bridge's batches in the sustained run: messages per batch and what closed them (count, bytes, linger).
    bridge_messages_per_batch: endToEnd
      ? round(endToEnd.e2eBatches.messages / Math.max(1, endToEnd.e2eBatches.batches))
      : null,
    bridge_batch_close_reasons: endToEnd?.e2eBatches.byReason ?? null,
    storage_cpu_us_per_msg: storageCpu,
    cores: availableParallelism(),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

// `-- --redis-cluster`: this benchmark twice per pair, on one Redis node and on a local Redis Cluster.
(process.argv.includes('--redis-cluster') ? compareOnRedisCluster(process.argv[1]!) : main())
  .catch((error: unknown) => {
    log(error instanceof Error ? error.stack : String(error));
    process.exitCode = 1;
  })
  .finally(() => {
    for (const child of children) child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
    setTimeout(() => process.exit(), 2_000).unref();
  });
