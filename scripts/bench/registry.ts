// Benchmark of device-registry: registrations/s (single and bulk, over HTTP, with a real dynsec Mosquitto,
// MongoDB-compatible server, Redis and event sink) and broker auth-hook decisions/s, beside the limit: a bare
// driver insertMany of the same documents on the same server in the same run. Loopback only, bounded.
// Ends with one JSON line. Env: MONGODB_URL, REDIS_URL (test services by default), BENCH_SINGLE, BENCH_BULK_BATCHES.

import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { MongoClient } from 'mongodb';
import { buildRegistry } from '../../functions/device-registry/compose.js';
import { configSchema } from '../../functions/device-registry/schema.js';
import { newDevice } from '../../functions/device-registry/use-cases/register-device.js';
import { mintApiKey } from '../../shared/api-keys.js';
import { loadConfig } from '../../shared/config.js';
import { createLogger } from '../../shared/logger.js';
import { hashSecret } from '../../shared/secrets.js';
import { createFunctionServer } from '../../shared/serve.js';
import { startDynsecMosquitto } from '../../test/support/dynsec-mosquitto.js';
import { startSinkServer } from '../../test/support/sink-server.js';

const MONGODB_URL = process.env.MONGODB_URL ?? 'mongodb://127.0.0.1:27027';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:26379';
const SINGLE = Number(process.env.BENCH_SINGLE ?? 200);
// Two batches: Mosquitto 2.0.11 dynsec rewrites its whole config per command, so every further batch is slower.
const BULK_BATCHES = Number(process.env.BENCH_BULK_BATCHES ?? 2);
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
const bulk = async (label: string, prefix: string, base: string) => {
  const started = performance.now();
  for (let b = 0; b < BULK_BATCHES; b += 1) {
    const devices = Array.from({ length: BULK_SIZE }, (_, i) => ({
      id: `${prefix}-b${b}-${i}`,
      type: 'thermo',
      tags: ['bench'],
      metadata: { batch: b },
    }));
    const result = (await post('/devices/bulk', { devices }, base)) as { created: number };
    if (result.created !== BULK_SIZE) throw new Error(`bulk created ${result.created}`);
    log(`  ${label} batch ${b + 1}/${BULK_BATCHES} done at ${(performance.now() - started).toFixed(0)} ms`);
  }
  const perS = (BULK_BATCHES * BULK_SIZE) / ((performance.now() - started) / 1_000);
  log(`bulk (${label}): ${BULK_BATCHES}×${BULK_SIZE} → ${perS.toFixed(1)}/s`);
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

  const bulkPerS = await bulk('dynsec', `${run}-d`, baseOf(server));
  const bulkHooksPerS = await bulk('hooks', `${run}-h`, baseOf(hooksServer));
  // The hashing alone, as a bulk call does it (concurrently on the libuv threadpool).
  started = performance.now();
  await Promise.all(Array.from({ length: BULK_SIZE }, () => hashSecret('x'.repeat(43), { N: registry.deps.scryptN })));
  const scryptPerS = BULK_SIZE / ((performance.now() - started) / 1_000);
  log(
    `scrypt alone: ${scryptPerS.toFixed(0)} hashes/s (N=${registry.deps.scryptN}, UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? 4})`,
  );

  // The limit: the same documents (hashes made beforehand, as a bulk call makes them) by the bare driver.
  const hash = await hashSecret('x'.repeat(43), { N: registry.deps.scryptN });
  const raw = (await mongo.connect()).db(dbName).collection<ReturnType<typeof newDevice>>('raw_devices');
  const now = new Date();
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
  log(`raw insertMany: ${rawPerS.toFixed(0)}/s`);

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
  log(
    `auth hooks: ${HOOK_CALLS} in ${(performance.now() - started).toFixed(0)} ms → ${hookPerS.toFixed(0)}/s (scrypt N=${registry.deps.scryptN})`,
  );

  const round = (n: number) => Math.round(n * 10) / 10;
  process.stdout.write(
    `${JSON.stringify({
      bench: 'registry',
      value: round(bulkPerS),
      unit: 'devices/s',
      limit: round(rawPerS),
      ratio: Math.round((bulkPerS / rawPerS) * 1_000) / 1_000,
      single_per_s: round(singlePerS),
      authhook_per_s: round(hookPerS),
      bulk_hooks_mode_per_s: round(bulkHooksPerS),
      scrypt_per_s: round(scryptPerS),
      scrypt_n: registry.deps.scryptN,
      bulk_batches: BULK_BATCHES,
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
