// Benchmark of the command round trip: app POST with `wait` → command-dispatch → router → bridge →
// Mosquitto → device → ack → bridge → router → command-dispatch → the caller sees SUCCEEDED. Beside it,
// in the same run, the raw limit: an MQTT publish → receive → reply round trip on the same broker.
// Everything runs on loopback as child processes (dist/*.js), bounded in count. The last line of
// output is one JSON object (`{"bench":"commands",…}`).
//   Env: MQTT_URL, REDIS_URL, MONGODB_URL (default: the test profile's ports 21883/26379/27027),
//   BENCH_SAMPLES (300), BENCH_COMMANDS (2000), BENCH_CONCURRENCY (32), BENCH_DEVICES (8), BENCH_NODELAY
//   (1), BENCH_DEBUG (print command-dispatch /metrics to stderr at the end), BENCH_LOG_DIR (keep the
//   children's info logs there), BENCH_CHILD_NODE_ARGS (node flags of every child), BENCH_PROFILE (a child's
//   name: write its CPU profile to /tmp/prof).
import { type ChildProcess, spawn } from 'node:child_process';
import { openSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { MongoClient } from 'mongodb';
import mqtt, { type MqttClient } from 'mqtt';
import { Agent, request } from 'undici';
import { mintApiKey } from '../../shared/api-keys.js';
import { freePort } from '../../test/support/ports.js';
import { cpuMeter, describeCpu, pidOfServer } from './support/cpu.js';

const env = process.env;
const MQTT_URL = env.MQTT_URL ?? 'mqtt://127.0.0.1:21883';
const REDIS_URL = env.REDIS_URL ?? 'redis://127.0.0.1:26379';
const MONGODB_URL = env.MONGODB_URL ?? 'mongodb://127.0.0.1:27027';
const SAMPLES = Number(env.BENCH_SAMPLES ?? 300);
const COMMANDS = Number(env.BENCH_COMMANDS ?? 2000);
const CONCURRENCY = Number(env.BENCH_CONCURRENCY ?? 32);
const DEVICES = Number(env.BENCH_DEVICES ?? 8);
const WARMUP = 50;
/**
 * TCP_NODELAY on the MQTT clients of this process (devices, raw caller and peer), as device firmware
 * usually sets it: without it Nagle's algorithm meets delayed ACKs and adds ~40 ms per hop on loopback.
 * The raw limit and the devices use the same setting (BENCH_NODELAY=0 turns it off for both).
 */
const NODELAY = env.BENCH_NODELAY !== '0';
const tune = (client: MqttClient) => {
  if (NODELAY) (client.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
  return client;
};
const run = `bench-${process.pid}-${Date.now().toString(36)}`;
const log = (line: string) => process.stderr.write(`${line}\n`);

const children: ChildProcess[] = [];
/** Each child's pid by its name, for the CPU meter. */
const childPids: Record<string, number | undefined> = {};
function spawnService(name: string, vars: Record<string, string>): void {
  // BENCH_LOG_DIR keeps each child's info log (one line per event, with its duration) to trace a round trip.
  const logFile = env.BENCH_LOG_DIR ? openSync(join(env.BENCH_LOG_DIR, `${name}.log`), 'w') : 'ignore';
  const level = env.BENCH_LOG_DIR ? { LOG_LEVEL: 'info' } : { LOG_LEVEL: 'warn' };
  const nodeArgs = [
    ...(env.BENCH_CHILD_NODE_ARGS ?? '').split(' ').filter(Boolean),
    ...(env.BENCH_PROFILE === name ? ['--cpu-prof', '--cpu-prof-dir=/tmp/prof'] : []),
  ];
  const child = spawn(process.execPath, [...nodeArgs, `dist/${name}.js`], {
    env: { ...env, ...vars, ...level },
    stdio: ['ignore', logFile, 'inherit'],
  });
  child.once('exit', (code) => {
    if (code !== null && code !== 0) log(`${name} exited with ${code}`);
  });
  children.push(child);
  childPids[name] = child.pid;
}

async function waitHealthy(url: string, what: string): Promise<void> {
  const until = Date.now() + 30_000;
  for (;;) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > until) throw new Error(`${what} did not become healthy at ${url}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
const round = (value: number) => Math.round(value * 1000) / 1000;
const summary = (samples: number[]) => {
  const sorted = [...samples].sort((a, b) => a - b);
  return { p50: round(quantile(sorted, 0.5)), p99: round(quantile(sorted, 0.99)) };
};

/** A device that answers every command at once with `succeeded` (a direct method: one response). */
async function startDevice(id: string): Promise<MqttClient> {
  const client = tune(
    await mqtt.connectAsync(MQTT_URL, {
      clientId: id,
      protocolVersion: 5,
      will: { topic: `devices/${id}/status`, payload: Buffer.from('offline'), qos: 1, retain: true },
    }),
  );
  client.on('message', (topic, payload) => {
    if (topic.endsWith('/ack')) return;
    const { params } = JSON.parse(payload.toString('utf8')) as { params: unknown };
    void client.publishAsync(`${topic}/ack`, JSON.stringify({ status: 'succeeded', result: params }), { qos: 1 });
  });
  await client.subscribeAsync(`devices/${id}/commands/+`, { qos: 1 });
  await client.publishAsync(`devices/${id}/status`, 'online', { qos: 1, retain: true });
  return client;
}

/** The limit: publish → the peer receives → the peer replies → received, QoS 1 both ways, one at a time. */
async function rawRoundTrips(count: number): Promise<number[]> {
  const caller = tune(await mqtt.connectAsync(MQTT_URL, { clientId: `${run}-caller`, protocolVersion: 5 }));
  const peer = tune(await mqtt.connectAsync(MQTT_URL, { clientId: `${run}-peer`, protocolVersion: 5 }));
  await peer.subscribeAsync(`${run}/req/+`, { qos: 1 });
  peer.on('message', (topic, payload) => void peer.publishAsync(topic.replace('/req/', '/res/'), payload, { qos: 1 }));
  await caller.subscribeAsync(`${run}/res/+`, { qos: 1 });
  const waiting = new Map<string, () => void>();
  caller.on('message', (topic) => waiting.get(topic.split('/').pop()!)?.());
  const samples: number[] = [];
  for (let i = 0; i < count + WARMUP; i += 1) {
    const started = performance.now();
    await new Promise<void>((resolve) => {
      waiting.set(String(i), resolve);
      void caller.publishAsync(
        `${run}/req/${i}`,
        JSON.stringify({ name: 'echo', params: { i }, expiresAt: new Date().toISOString() }),
        { qos: 1 },
      );
    });
    waiting.delete(String(i));
    if (i >= WARMUP) samples.push(performance.now() - started);
  }
  await Promise.all([caller.endAsync(), peer.endAsync()]);
  return samples;
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'kiot-bench-commands-'));
  const [routerPort, bridgePort, functionPort] = [await freePort(), await freePort(), await freePort()];
  const ingress = `http://127.0.0.1:${routerPort}/kiot/default`;
  const functionUrl = `http://127.0.0.1:${functionPort}`;
  const dbName = run.replace(/[^A-Za-z0-9_-]/g, '_');
  const { key, entry } = await mintApiKey('bench', ['commands:*']);
  const mongo = await new MongoClient(MONGODB_URL).connect();
  const devices = Array.from({ length: DEVICES }, (_, i) => `${run}-d${i}`);
  const clients: MqttClient[] = [];
  try {
    const now = new Date();
    await mongo
      .db(dbName)
      .collection<{ _id: string }>('devices')
      .insertMany(
        devices.map((id) => ({
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
    spawnService('router', {
      PORT: String(routerPort),
      KNATIVE_DIR: 'knative',
      ROUTER_SERVICES: `command-dispatch=${functionUrl},mqtt-bridge=http://127.0.0.1:${bridgePort},dead-letters=http://127.0.0.1:${routerPort}/dead-letters`,
      ROUTER_DEAD_LETTER_FILE: join(root, 'dead-letters.jsonl'),
      LOG_LEVEL: 'error',
    });
    spawnService('bridge', {
      MQTT_URL,
      K_SINK: ingress,
      DEAD_LETTER_SINK: `http://127.0.0.1:${routerPort}/dead-letters`,
      PORT: String(bridgePort),
      BRIDGE_CLIENT_ID: `${run}-bridge`,
      BRIDGE_SHARE_GROUP: `${run}-group`,
    });
    spawnService('command-dispatch', {
      PORT: String(functionPort),
      MONGODB_URL,
      MONGODB_DB: dbName,
      REDIS_URL,
      K_SINK: ingress,
      REDIS_KEY_PREFIX: `${run}:`,
      API_KEYS: JSON.stringify([entry]),
    });
    await Promise.all([
      waitHealthy(`http://127.0.0.1:${routerPort}/healthz`, 'router'),
      waitHealthy(`http://127.0.0.1:${bridgePort}/healthz`, 'bridge'),
      waitHealthy(`${functionUrl}/healthz`, 'command-dispatch'),
    ]);
    for (const id of devices) clients.push(await startDevice(id));

    const agent = new Agent({ connections: CONCURRENCY * 2, keepAliveTimeout: 30_000 });
    const call = async (deviceId: string, n: number): Promise<number> => {
      const started = performance.now();
      const response = await request(`${functionUrl}/devices/${deviceId}/commands`, {
        method: 'POST',
        dispatcher: agent,
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'echo', params: { n }, wait: 10 }),
      });
      const body = (await response.body.json()) as { status?: string };
      if (response.statusCode !== 200 || body.status !== 'SUCCEEDED')
        throw new Error(`command ${n}: ${response.statusCode} ${JSON.stringify(body)}`);
      return performance.now() - started;
    };
    // Presence travels device → bridge → router → function; wait until a command goes straight through.
    const until = Date.now() + 30_000;
    for (const id of devices) {
      for (;;) {
        try {
          await call(id, -1);
          break;
        } catch (error) {
          if (Date.now() > until) throw error;
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
      }
    }

    log(`raw MQTT round trips: ${SAMPLES}`);
    const raw = summary(await rawRoundTrips(SAMPLES));
    log(`sequential commands: ${SAMPLES}`);
    // The processes of the stack, measured per phase (this process is the app and the devices).
    const stackPids = {
      bench: process.pid,
      ...childPids,
      // By listening port, not by process name: on a shared host another `java` or `redis-server` may come first.
      mongo: pidOfServer(MONGODB_URL),
      redis: pidOfServer(REDIS_URL),
      mosquitto: pidOfServer(MQTT_URL),
    };
    const latencies: number[] = [];
    for (let i = 0; i < WARMUP; i += 1) await call(devices[0]!, i);
    // What the stack spends doing nothing (timers, keep-alives), to tell it apart from the commands' share.
    const idleMeter = cpuMeter(stackPids);
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    const idleCpuPerSecond = idleMeter.perUnit(3);
    const sequentialMeter = cpuMeter(stackPids);
    const sequentialStarted = performance.now();
    for (let i = WARMUP; i < SAMPLES + WARMUP; i += 1) latencies.push(await call(devices[0]!, i));
    const sequentialSeconds = (performance.now() - sequentialStarted) / 1000;
    const sequentialCpu = sequentialMeter.perUnit(SAMPLES);
    log(`CPU per command, one at a time: ${describeCpu(sequentialCpu)}`);
    log(
      `  of which idle upkeep (${describeCpu(idleCpuPerSecond)} per second): ` +
        `${Math.round((idleCpuPerSecond.total! * sequentialSeconds) / SAMPLES)} µs per command`,
    );
    const commands = summary(latencies);
    log(`sustained: ${COMMANDS} commands, ${CONCURRENCY} callers, ${DEVICES} devices`);
    const meter = cpuMeter(stackPids);
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async (_, worker) => {
        while (next < COMMANDS) {
          next += 1;
          await call(devices[worker % DEVICES]!, next);
        }
      }),
    );
    const perSecond = Math.round((COMMANDS / (performance.now() - started)) * 1000);
    const cpu = meter.perUnit(COMMANDS);
    log(`CPU per command, sustained: ${describeCpu(cpu)} (${availableParallelism()} cores)`);
    if (env.BENCH_DEBUG) log(await (await fetch(`${functionUrl}/metrics`)).text());
    await agent.close();

    const ratio = round(commands.p50 / raw.p50);
    log(
      `raw p50 ${raw.p50} ms p99 ${raw.p99} ms | command p50 ${commands.p50} ms p99 ${commands.p99} ms | ` +
        `${perSecond}/s | target p50 <= ${round(3 * raw.p50 + 5)} ms`,
    );
    const result = {
      bench: 'commands',
      value: commands.p50,
      unit: 'ms',
      limit: raw.p50,
      ratio,
      p99_ms: commands.p99,
      per_s: perSecond,
      raw_p99_ms: raw.p99,
      target_ms: round(3 * raw.p50 + 5),
      nodelay: NODELAY,
      cpu_us_per_command: cpu,
      sequential_cpu_us_per_command: sequentialCpu,
      idle_cpu_us_per_s: idleCpuPerSecond,
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    for (const client of clients) {
      await client
        .publishAsync(`devices/${client.options.clientId}/status`, '', { qos: 1, retain: true })
        .catch(() => undefined);
      await client.endAsync().catch(() => undefined);
    }
    for (const child of children) child.kill('SIGTERM');
    await Promise.all(
      children.map((child) =>
        child.exitCode === null ? new Promise((resolve) => child.once('exit', resolve)) : undefined,
      ),
    );
    await mongo
      .db(dbName)
      .dropDatabase()
      .catch(() => undefined);
    await mongo.close();
    await rm(root, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  log(error instanceof Error ? (error.stack ?? error.message) : String(error));
  for (const child of children) child.kill('SIGKILL');
  process.exit(1);
});
