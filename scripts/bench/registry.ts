// Benchmark of device-registry: registrations/s (single and bulk, over HTTP, with a real dynsec Mosquitto,
// MongoDB-compatible server, Redis and event sink) and broker auth-hook decisions/s, beside the limit: a bare
// driver insertMany of the same documents on the same server in the same run. Loopback only, bounded.
// `value` is the fleet-scale path: 10,000 devices in bulk calls of 1,000 whose broker credentials the broker
// checks through the registry (BROKER_ACCESS=hooks: the stored hash is the broker's credential; one insertMany
// per call, and the devices announced in io.kiot.device.registered.batch events of 250). Mosquitto
// 2.0.11's dynamic security is measured beside it on fewer devices: it rewrites its whole config file once per
// command, so its cost grows with the square of the fleet (docs/performance.md).
// Ends with one JSON line. Env: MONGODB_URL, REDIS_URL (test services by default), BENCH_SINGLE,
// BENCH_BULK_BATCHES (hooks and raw, × 1,000), BENCH_DYNSEC_BATCHES (× 1,000).

import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { MongoClient } from 'mongodb';
import { buildRegistry } from '../../functions/device-registry/compose.js';
import { configSchema } from '../../functions/device-registry/schema.js';
import { newDevice } from '../../functions/device-registry/use-cases/register-device.js';
import { mintApiKey } from '../../shared/api-keys.js';
import { loadConfig } from '../../shared/config.js';
import { createLogger } from '../../shared/logger.js';
import { generateSecret, hashGeneratedSecret } from '../../shared/secrets.js';
import { createFunctionServer } from '../../shared/serve.js';
import { startDynsecMosquitto } from '../../test/support/dynsec-mosquitto.js';
import { startSinkServer } from '../../test/support/sink-server.js';
import { cpuMeter, describeCpu, pidOfServer } from './support/cpu.js';

const MONGODB_URL = process.env.MONGODB_URL ?? 'mongodb://127.0.0.1:27027';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:26379';
const SINGLE = Number(process.env.BENCH_SINGLE ?? 200);
const BULK_BATCHES = Number(process.env.BENCH_BULK_BATCHES ?? 10);
// Two batches: Mosquitto 2.0.11 dynsec rewrites its whole config per command, so every further batch is slower.
const DYNSEC_BATCHES = Number(process.env.BENCH_DYNSEC_BATCHES ?? 2);
const BULK_SIZE = 1_000;
const HOOK_CALLS = Number(process.env.BENCH_HOOK_CALLS ?? 5_000);
const log = (line: string) => process.stderr.write(`${line}\n`);

async function pool<T>(count: number, concurrency: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        out[i] = await task(i);
      }
    }),
  );
  return out;
}

const run = `bench-${Date.now().toString(36)}`;
const dbName = `bench_registry_${Date.now().toString(36)}`;
const broker = await startDynsecMosquitto();
const sink = await startSinkServer();
sink.respond = () => ({ status: 202 });
const admin = await mintApiKey('bench', ['*']);
const config = loadConfig(configSchema, {
  MONGODB_URL,
  MONGODB_DB: dbName,
  REDIS_URL,
  REDIS_PREFIX: `${run}:`,
  MQTT_URL: broker.url,
  MQTT_USERNAME: broker.admin.username,
  MQTT_PASSWORD: broker.admin.password,
  K_SINK: sink.url,
  API_KEYS: JSON.stringify([admin.entry]),
  PROVISIONING_REPLY_KEY: randomBytes(32).toString('base64url'),
  LOG_LEVEL: 'silent',
});
const registry = buildRegistry(config, createLogger('device-registry', process.env.BENCH_LOG_LEVEL ?? 'silent'));
const server = createFunctionServer('device-registry-bench', registry.handler);
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
// The same function with BROKER_ACCESS=hooks (EMQX asks the registry; no broker writes), on the same stores.
const hooksOnly = buildRegistry({ ...config, BROKER_ACCESS: 'hooks' }, createLogger('device-registry', 'silent'));
const hooksServer = createFunctionServer('device-registry-bench-hooks', hooksOnly.handler);
await new Promise<void>((resolve) => hooksServer.listen(0, '127.0.0.1', resolve));
const baseOf = (listening: typeof server) => `http://127.0.0.1:${(listening.address() as AddressInfo).port}`;
const post = async (path: string, body: unknown, base = baseOf(server)) => {
  const response = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${admin.key}` },
    body: JSON.stringify(body),
  });
  const json = (await response.json()) as unknown;
  if (response.status >= 300) throw new Error(`${path} answered ${response.status}: ${JSON.stringify(json)}`);
  return json;
};
const bulk = async (label: string, prefix: string, base: string, batches: number) => {
  const started = performance.now();
  for (let b = 0; b < batches; b += 1) {
    const devices = Array.from({ length: BULK_SIZE }, (_, i) => ({
      id: `${prefix}-b${b}-${i}`,
      type: 'thermo',
      tags: ['bench'],
      metadata: { batch: b },
    }));
    const result = (await post('/devices/bulk', { devices }, base)) as { created: number };
    if (result.created !== BULK_SIZE) throw new Error(`bulk created ${result.created}`);
    log(`  ${label} batch ${b + 1}/${batches} done at ${(performance.now() - started).toFixed(0)} ms`);
  }
  const perS = (batches * BULK_SIZE) / ((performance.now() - started) / 1_000);
  log(`bulk (${label}): ${batches}×${BULK_SIZE} → ${perS.toFixed(1)}/s`);
  return perS;
};
const mongo = new MongoClient(MONGODB_URL);

try {
  // Warm-up: connections to Mongo, Redis, the broker and the sink.
  await post('/devices', { id: `${run}-warm` });

  let started = performance.now();
  const singles = (await pool(SINGLE, 8, (i) =>
    post('/devices', { id: `${run}-s-${i}`, type: 'thermo', tags: ['bench'] }),
  )) as { device: { id: string }; secret: string }[];
  const singlePerS = SINGLE / ((performance.now() - started) / 1_000);
  log(`single: ${SINGLE} in ${(performance.now() - started).toFixed(0)} ms → ${singlePerS.toFixed(1)}/s`);

  // The servers found by their listening ports: by process name, a shared host's other `java` could come first.
  const meter = cpuMeter({
    'bench+registry': process.pid,
    mongo: pidOfServer(MONGODB_URL),
    redis: pidOfServer(REDIS_URL),
  });
  const bulkHooksPerS = await bulk('hooks', `${run}-h`, baseOf(hooksServer), BULK_BATCHES);
  const hooksCpu = meter.perUnit(BULK_BATCHES * BULK_SIZE);
  log(`  CPU per registration (hooks bulk): ${describeCpu(hooksCpu)}`);
  // Under load Mosquitto's config rewrites can outlast the registry's broker timeout (503): the figure is then
  // what finished, and the JSON says so.
  let dynsecError: string | undefined;
  const bulkPerS = await bulk('dynsec', `${run}-d`, baseOf(server), DYNSEC_BATCHES).catch((error: unknown) => {
    dynsecError = error instanceof Error ? error.message : String(error);
    log(`dynsec bulk failed: ${dynsecError}`);
    return 0;
  });
  // The hashing alone, as a bulk call does it.
  started = performance.now();
  for (let i = 0; i < BULK_SIZE; i += 1) hashGeneratedSecret(generateSecret());
  const hashPerS = BULK_SIZE / ((performance.now() - started) / 1_000);
  log(`hash alone: ${hashPerS.toFixed(0)} secrets/s generated and hashed (salted SHA-256, shared/secrets.ts)`);

  // The limit: the same documents (hashes made beforehand, as a bulk call makes them) by the bare driver.
  const hash = hashGeneratedSecret(generateSecret());
  const raw = (await mongo.connect()).db(dbName).collection<ReturnType<typeof newDevice>>('raw_devices');
  const now = new Date();
  const rawMeter = cpuMeter({ bench: process.pid, mongo: pidOfServer(MONGODB_URL) });
  started = performance.now();
  for (let b = 0; b < BULK_BATCHES; b += 1) {
    await raw.insertMany(
      Array.from({ length: BULK_SIZE }, (_, i) =>
        newDevice(
          { id: `${run}-r${b}-${i}`, type: 'thermo', tags: ['bench'], metadata: { batch: b }, status: 'active' },
          hash,
          now,
        ),
      ),
      { ordered: false },
    );
  }
  const rawPerS = (BULK_BATCHES * BULK_SIZE) / ((performance.now() - started) / 1_000);
  const rawCpu = rawMeter.perUnit(BULK_BATCHES * BULK_SIZE);
  log(`raw insertMany: ${rawPerS.toFixed(0)}/s; CPU per document: ${describeCpu(rawCpu)}`);
  log(
    `bulk with broker credentials: ${bulkHooksPerS.toFixed(0)}/s (hooks) = ${(bulkHooksPerS / rawPerS).toFixed(3)} × raw; ` +
      `Mosquitto dynsec ${bulkPerS.toFixed(1)}/s = ${(bulkPerS / rawPerS).toFixed(4)} × raw`,
  );

  // Auth hooks: connect, publish and subscribe decisions for the single-registered devices, 16 in flight.
  started = performance.now();
  await pool(HOOK_CALLS, 16, async (i) => {
    const { device, secret } = singles[i % singles.length]!;
    const kind = i % 3;
    const path = kind === 0 ? '/broker/authn' : '/broker/authz';
    const body =
      kind === 0
        ? { clientid: device.id, username: device.id, password: secret }
        : {
            clientid: device.id,
            username: device.id,
            topic: kind === 1 ? `devices/${device.id}/telemetry` : `devices/${device.id}/commands/#`,
            action: kind === 1 ? 'publish' : 'subscribe',
          };
    const answer = (await post(path, body)) as { result: string };
    if (answer.result !== 'allow') throw new Error(`hook said ${answer.result}`);
  });
  const hookPerS = HOOK_CALLS / ((performance.now() - started) / 1_000);
  log(`auth hooks: ${HOOK_CALLS} in ${(performance.now() - started).toFixed(0)} ms → ${hookPerS.toFixed(0)}/s`);

  const round = (n: number) => Math.round(n * 10) / 10;
  process.stdout.write(
    `${JSON.stringify({
      bench: 'registry',
      value: round(bulkHooksPerS),
      unit: 'devices/s',
      limit: round(rawPerS),
      ratio: Math.round((bulkHooksPerS / rawPerS) * 1_000) / 1_000,
      devices: BULK_BATCHES * BULK_SIZE,
      cpu_us_per_device: hooksCpu,
      raw_cpu_us_per_device: rawCpu,
      dynsec_per_s: round(bulkPerS),
      dynsec_ratio: Math.round((bulkPerS / rawPerS) * 1_000) / 1_000,
      dynsec_devices: DYNSEC_BATCHES * BULK_SIZE,
      ...(dynsecError ? { dynsec_error: dynsecError } : {}),
      single_per_s: round(singlePerS),
      authhook_per_s: round(hookPerS),
      hash_per_s: round(hashPerS),
    })}\n`,
  );
} finally {
  await mongo
    .db(dbName)
    .dropDatabase()
    .catch(() => undefined);
  await mongo.close();
  for (const listening of [server, hooksServer]) {
    listening.closeAllConnections();
    listening.close();
  }
  await registry.close();
  await hooksOnly.close();
  await sink.close();
  await broker.close();
}
