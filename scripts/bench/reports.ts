// Benchmark of report-generation: a report over 1 device × 30 days of 1-minute data (43,200 samples) and
// over 1,000 devices × 1 day (1-minute data, 1.44 M samples), each timed beside a plain raw scan of the same
// samples on the same server in the same run. Rollups are computed first and timed separately.
// The function runs in this process behind its real HTTP entry (functions framework, port 0).
// MongoDB: MONGODB_URL when set (a fresh database there), else a private mongo-java-server on a free port
// with BENCH_MONGO_HEAP (8g): 1.5 M samples would not fit next to other work in the shared test server's heap.
// Env: BENCH_FLEET_DEVICES (1000), BENCH_FLEET_STEP_SECONDS (60), BENCH_REPEAT (3), BENCH_LOG_LEVEL (silent: the
// function's log lines, with per-step times, to stdout before the result line).
// Last line: {"bench":"reports","value":<30-day report ms>,"unit":"ms","limit":<raw scan ms>,"ratio":…,"fleet_ms":…}
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { type Db, MongoClient } from 'mongodb';
import { request } from 'undici';
import { createReportApp } from '../../functions/report-generation/app.js';
import { createDeps, ensureIndexes } from '../../functions/report-generation/deps.js';
import { createApiKeyAuthorizer, mintApiKey } from '../../shared/api-keys.js';
import { createEmitter } from '../../shared/emitter.js';
import { createLogger } from '../../shared/logger.js';
import { createMongo } from '../../shared/mongo.js';
import { createFunctionServer } from '../../shared/serve.js';
import { freePort } from '../../test/support/ports.js';

const env = process.env;
const FLEET = Number(env.BENCH_FLEET_DEVICES ?? 1_000);
const FLEET_STEP_MS = Number(env.BENCH_FLEET_STEP_SECONDS ?? 60) * 1_000;
const REPEAT = Number(env.BENCH_REPEAT ?? 3);
const DAY = 86_400_000;
const END = Date.UTC(2026, 5, 1);
const SOLO_FROM = END - 30 * DAY;
const FLEET_FROM = END - DAY;
const log = (line: string) => process.stderr.write(`[bench:reports] ${line}\n`);
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const round = (ms: number) => Math.round(ms * 10) / 10;

/** A private mongo-java-server (scripts/mongo/KiotMongoServer.java, classpath from `npm run services -- install`). */
async function privateMongo(): Promise<{ url: string; child?: ChildProcess }> {
  if (env.MONGODB_URL) return { url: env.MONGODB_URL };
  const port = await freePort();
  const classpath = readFileSync('.kiot/mongo-classpath.txt', 'utf8').trim();
  const child = spawn(
    'java',
    [
      `-Xmx${env.BENCH_MONGO_HEAP ?? '8g'}`,
      '-cp',
      classpath,
      'scripts/mongo/KiotMongoServer.java',
      '127.0.0.1',
      String(port),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`mongo-java-server exited with ${code}`)));
    child.stdout!.on('data', (chunk: Buffer) => chunk.toString().includes('listening') && resolve());
  });
  return { url: `mongodb://127.0.0.1:${port}`, child };
}

async function seed(db: Db): Promise<number> {
  const fleetIds = Array.from({ length: FLEET }, (_, i) => `fleet-${String(i).padStart(4, '0')}`);
  const now = new Date();
  await db.collection('devices').insertMany(
    ['solo', ...fleetIds].map((id) => ({
      _id: id as never,
      type: id === 'solo' ? 'solo' : 'bench-fleet',
      tags: [],
      metadata: {},
      status: 'active',
      credential: { hash: 'x', rotatedAt: now },
      createdAt: now,
      updatedAt: now,
      version: 1,
    })),
  );
  const telemetry = db.collection('telemetry');
  let total = 0;
  const sample = (deviceId: string, ts: number, n: number) => ({
    _id: `${deviceId}~${ts}`,
    deviceId,
    ts: new Date(ts),
    metrics: { temp: 20 + ((n * 7) % 150) / 10, hum: 40 + ((n * 13) % 400) / 10 },
    eventId: `ev-${deviceId}-${ts}`,
    receivedAt: now,
    ingestedAt: now,
    msgId: String(ts),
  });
  const insert = async (docs: ReturnType<typeof sample>[]) => {
    await telemetry.insertMany(docs as never[], { ordered: false });
    total += docs.length;
  };
  const batch: ReturnType<typeof sample>[] = [];
  for (let ts = SOLO_FROM, n = 0; ts < END; ts += 60_000, n += 1) {
    batch.push(sample('solo', ts, n));
    if (batch.length === 10_000) await insert(batch.splice(0));
  }
  for (const deviceId of fleetIds) {
    for (let ts = FLEET_FROM, n = 0; ts < END; ts += FLEET_STEP_MS, n += 1) batch.push(sample(deviceId, ts, n));
    if (batch.length >= 10_000) await insert(batch.splice(0));
  }
  if (batch.length > 0) await insert(batch);
  return total;
}

/** The limit: the raw driver reading the same samples the report covers (a cursor over every document). */
async function rawScan(db: Db, filter: Record<string, unknown>): Promise<{ ms: number; docs: number }> {
  const started = performance.now();
  let docs = 0;
  for await (const doc of db.collection('telemetry').find(filter, { batchSize: 10_000 })) if (doc) docs += 1;
  return { ms: performance.now() - started, docs };
}

async function main(): Promise<void> {
  const mongoServer = await privateMongo();
  const dbName = `bench_reports_${process.pid}_${Date.now().toString(36)}`;
  const client = await new MongoClient(mongoServer.url).connect();
  const db = client.db(dbName);
  const mongo = createMongo(mongoServer.url, dbName);
  let server: Server | undefined;
  try {
    let started = performance.now();
    const samples = await seed(db);
    log(`seeded ${samples} samples in ${Math.round(performance.now() - started)} ms`);

    const logger = createLogger('report-generation', env.BENCH_LOG_LEVEL ?? 'silent');
    const deps = createDeps({
      mongo,
      logger,
      emitter: createEmitter({ sink: 'http://127.0.0.1:9/', source: '/bench' }),
    });
    await ensureIndexes(deps);
    const key = await mintApiKey('bench', ['reports:*']);
    server = createFunctionServer(
      'report-generation-bench',
      createReportApp(deps, { logger, authorize: createApiKeyAuthorizer([key.entry]) }),
    );
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const call = async (method: string, path: string, body?: unknown) => {
      // No client timeouts: a slow step is measured, not cut off.
      const response = await request(`${base}${path}`, {
        method: method as 'GET' | 'POST',
        headers: { authorization: `Bearer ${key.key}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
        headersTimeout: 0,
        bodyTimeout: 0,
      });
      const text = await response.body.text();
      if (response.statusCode >= 300) throw new Error(`${method} ${path}: ${response.statusCode} ${text}`);
      return text;
    };

    started = performance.now();
    const rollups = JSON.parse(await call('POST', '/rollups/run')) as { hours: number; days: number; ms: unknown };
    const rollupMs = performance.now() - started;
    log(
      `rollups: ${rollups.hours} hours, ${rollups.days} days in ${Math.round(rollupMs)} ms (${JSON.stringify(rollups.ms)})`,
    );

    const timeReport = async (body: Record<string, unknown>) => {
      const times: number[] = [];
      let header:
        | { id: string; interval: string; sources: string[]; summary: { metrics: Record<string, { count: number }> } }
        | undefined;
      for (let i = 0; i < REPEAT; i += 1) {
        const t0 = performance.now();
        header = JSON.parse(await call('POST', '/reports', body));
        times.push(performance.now() - t0);
      }
      return { ms: median(times), header: header! };
    };
    const solo = await timeReport({
      scope: { deviceIds: ['solo'] },
      from: new Date(SOLO_FROM).toISOString(),
      to: new Date(END).toISOString(),
      metrics: ['temp', 'hum'],
    });
    log(
      `30-day report: ${round(solo.ms)} ms (interval ${solo.header.interval}, from ` +
        `${solo.header.sources.join('+')}, ${solo.header.summary.metrics.temp!.count} samples)`,
    );
    const fleet = await timeReport({
      scope: { type: 'bench-fleet' },
      from: new Date(FLEET_FROM).toISOString(),
      to: new Date(END).toISOString(),
      metrics: ['temp', 'hum'],
    });
    log(
      `fleet report: ${round(fleet.ms)} ms (interval ${fleet.header.interval}, from ` +
        `${fleet.header.sources.join('+')}, ${fleet.header.summary.metrics.temp!.count} samples)`,
    );
    let t0 = performance.now();
    const csv = await call('GET', `/reports/${fleet.header.id}?format=csv`);
    log(`fleet CSV: ${csv.length} bytes streamed in ${Math.round(performance.now() - t0)} ms`);

    const soloScans: number[] = [];
    const fleetScans: number[] = [];
    for (let i = 0; i < REPEAT; i += 1) {
      const a = await rawScan(db, { deviceId: 'solo', ts: { $gte: new Date(SOLO_FROM), $lt: new Date(END) } });
      const b = await rawScan(db, {
        deviceId: { $ne: 'solo' },
        ts: { $gte: new Date(FLEET_FROM), $lt: new Date(END) },
      });
      soloScans.push(a.ms);
      fleetScans.push(b.ms);
      if (i === 0) log(`raw scans read ${a.docs} and ${b.docs} documents`);
    }
    const limit = median(soloScans);
    const fleetLimit = median(fleetScans);
    log(`raw scan: 30 days ${round(limit)} ms, fleet day ${round(fleetLimit)} ms`);
    t0 = performance.now();
    const summary = {
      bench: 'reports',
      value: round(solo.ms),
      unit: 'ms',
      limit: round(limit),
      ratio: Math.round((solo.ms / limit) * 1000) / 1000,
      fleet_ms: round(fleet.ms),
      fleet_limit: round(fleetLimit),
      fleet_ratio: Math.round((fleet.ms / fleetLimit) * 1000) / 1000,
      rollup_ms: Math.round(rollupMs),
      samples,
    };
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  } finally {
    server?.closeAllConnections();
    server?.close();
    await db.dropDatabase().catch(() => undefined);
    await client.close();
    await mongo.close();
    if (mongoServer.child) mongoServer.child.kill('SIGTERM');
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    log(error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.exit(1);
  },
);
