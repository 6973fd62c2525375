// Benchmark of the MQTT⇄CloudEvents bridge, loopback only, bounded in count and time.
//   simulated devices (several MQTT connections, QoS 1) → a private Mosquitto → bridge (child process,
//   `node dist/bridge.js`, so its RSS is its own) → a no-op HTTP sink in this process.
// In the same run it measures the limit: Mosquitto's raw QoS 1 pub→sub rate to as many persistent-session
// subscribers, in one shared subscription, as the bridge has sessions (BRIDGE_SESSIONS), each acknowledging at
// once: the broker's delivery in the bridge's own shape. (One subscriber was the limit until session 9; with the
// broker's max_inflight_messages 100 for it against the bridge's 8 × 32, it measured the window, not the broker,
// and the bridge ran at 1.4–2.3 × that "limit".) The bridge runs twice: with its defaults (telemetry batching on), which
// is `value`, and with BATCH_MAX_COUNT=1 (one event per message, as before batching) beside it. Ends with one
// JSON line (see the brief of `npm run bench:bridge`). BENCH_BRIDGE_ENV='A=1 B=2' sets more bridge env.
// Env: BENCH_MESSAGES (30000), BENCH_CONNECTIONS (4), BENCH_WINDOW (64 in flight per connection),
// BENCH_LATENCY_SECONDS (5), BRIDGE_SESSIONS (the bridge's default), MQTT_URL (instead of a private broker),
// BENCH_BRIDGE_NODE_ARGS (node flags of the bridge; default its deployed ones), BENCH_BRIDGE_LOG.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import mqtt, { type MqttClient } from 'mqtt';
import { bridgeConfigSchema } from '../../bridge/config.js';
// The test helper that runs a private Mosquitto on a free port: the bench needs exactly that.
import { freePort, startMosquitto } from '../../test/support/mosquitto.js';
import { bridgeBatchMeter, describeBatches } from './support/bridge-batches.js';
import { type CpuPerUnit, cpuMeter, describeCpu } from './support/cpu.js';
import { productionNodeArgs } from './support/deploy-values.js';

const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 30_000);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 4);
const WINDOW = Number(process.env.BENCH_WINDOW ?? 64);
const LATENCY_SECONDS = Number(process.env.BENCH_LATENCY_SECONDS ?? 5);
const DEVICES = 200;
/** The raw limit's subscribers: as many as the bridge has sessions in this run. */
const RAW_SUBSCRIBERS = bridgeConfigSchema.shape.BRIDGE_SESSIONS.parse(process.env.BRIDGE_SESSIONS);
const DEADLINE_MS = 240_000;
const run = `b${process.pid}`;
const log = (line: string) => process.stderr.write(`[bench:bridge] ${line}\n`);

/** Each message carries its send time, so the receiving side computes the latency. */
const payloadOf = (n: number) =>
  JSON.stringify({
    metrics: { temperature: 20 + (n % 10), humidity: 40 },
    msgId: `${run}-${n}`,
    sentAt: performance.now(),
  });

async function connectDevices(url: string): Promise<MqttClient[]> {
  return Promise.all(
    Array.from({ length: CONNECTIONS }, (_, i) =>
      mqtt.connectAsync(url, { clientId: `${run}-dev${i}`, protocolVersion: 5, reconnectPeriod: 0 }),
    ),
  );
}

/** Publishes messages [from, to) over all connections, at most WINDOW unacknowledged per connection. */
async function publishBurst(clients: MqttClient[], from: number, to: number): Promise<void> {
  let next = from;
  await Promise.all(
    clients.map(
      (client) =>
        new Promise<void>((resolve, reject) => {
          let inFlight = 0;
          const pump = () => {
            while (inFlight < WINDOW && next < to) {
              const n = next++;
              inFlight += 1;
              client.publish(`devices/${run}-d${n % DEVICES}/telemetry`, payloadOf(n), { qos: 1 }, (error) => {
                if (error) return reject(error);
                inFlight -= 1;
                pump();
              });
            }
            if (inFlight === 0 && next >= to) resolve();
          };
          pump();
        }),
    ),
  );
}

/** Publishes `count` messages at `rate` per second, spread evenly (paced load). */
async function publishPaced(clients: MqttClient[], from: number, count: number, rate: number): Promise<void> {
  const started = performance.now();
  let sent = 0;
  while (sent < count) {
    const due = Math.min(count, Math.floor(((performance.now() - started) / 1000) * rate) + 1);
    for (; sent < due; sent += 1) {
      const n = from + sent;
      clients[n % clients.length]!.publish(`devices/${run}-d${n % DEVICES}/telemetry`, payloadOf(n), { qos: 1 });
    }
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

interface Receiver {
  count: number;
  lastAt: number;
  latencies: number[];
  waitFor(count: number): Promise<void>;
  reset(): void;
}

function receiver(): Receiver {
  const state: Receiver & { target: number; resolve?: () => void } = {
    count: 0,
    lastAt: 0,
    latencies: [],
    target: Infinity,
    waitFor(count) {
      state.target = count;
      // Progress, so that a stall shows where it is.
      const progress = setInterval(() => log(`  … ${state.count}/${count} received`), 5_000);
      return new Promise<void>((resolve) => {
        state.resolve = () => {
          clearInterval(progress);
          resolve();
        };
        if (state.count >= count) state.resolve();
      });
    },
    reset() {
      state.count = 0;
      state.latencies = [];
      state.target = Infinity;
    },
  };
  return state;
}

/** Records every message a request carried (one event, or each item of a batch): its count and latency. */
function record(state: Receiver, body: Buffer | string) {
  const at = performance.now();
  const text = typeof body === 'string' ? body : body.toString('latin1');
  let messages = 0;
  for (const match of text.matchAll(/"sentAt":([0-9.]+)/g)) {
    state.latencies.push(at - Number(match[1]));
    messages += 1;
  }
  state.count += Math.max(messages, 1);
  state.lastAt = at;
  const s = state as Receiver & { target: number; resolve?: () => void };
  if (s.count >= s.target) s.resolve?.();
}

/** Raw limit: one QoS 1 subscriber on a persistent session that acknowledges at once. */
async function measureRaw(
  url: string,
  devices: MqttClient[],
  pids: Record<string, number | undefined>,
): Promise<{ rate: number; cpu: CpuPerUnit }> {
  const got = receiver();
  const subscribers = await Promise.all(
    Array.from({ length: RAW_SUBSCRIBERS }, (_, i) =>
      mqtt.connectAsync(url, {
        clientId: `${run}-raw-${i}`,
        protocolVersion: 5,
        clean: false,
        properties: { sessionExpiryInterval: 300 },
        reconnectPeriod: 0,
      }),
    ),
  );
  const filter = `$share/${run}-raw/devices/+/telemetry`;
  for (const subscriber of subscribers) {
    subscriber.on('message', (_topic, payload) => record(got, payload));
    await subscriber.subscribeAsync(filter, { qos: 1 });
  }
  await publishBurst(devices, 0, 2_000); // warm-up
  await got.waitFor(2_000);
  got.reset();
  const meter = cpuMeter(pids);
  const started = performance.now();
  await publishBurst(devices, 0, MESSAGES);
  await got.waitFor(MESSAGES);
  const rate = MESSAGES / ((got.lastAt - started) / 1000);
  const cpu = meter.perUnit(MESSAGES);
  await Promise.all(subscribers.map((subscriber) => subscriber.unsubscribeAsync(filter)));
  await Promise.all(subscribers.map((subscriber) => subscriber.endAsync()));
  return { rate, cpu };
}

async function startSink(got: Receiver): Promise<Server> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (req.url?.startsWith('/sink')) record(got, Buffer.concat(chunks));
      res.writeHead(202).end();
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

async function spawnBridge(env: Record<string, string>): Promise<{ child: ChildProcess; url: string }> {
  const port = await freePort();
  // The bridge's command line as deployed (knative/deploy-values.json: its heap flags under the container's memory
  // limit; on this large host V8 would otherwise size the heap for the machine and let garbage pile up lazily).
  const nodeArgs = process.env.BENCH_BRIDGE_NODE_ARGS?.split(' ').filter(Boolean) ?? productionNodeArgs('bridge');
  const child = spawn(process.execPath, [...nodeArgs, 'dist/bridge.js'], {
    env: { ...process.env, ...env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (chunk: Buffer) => process.env.BENCH_BRIDGE_LOG && process.stderr.write(chunk));
  child.stderr!.on('data', (chunk: Buffer) => process.stderr.write(chunk));
  const url = `http://127.0.0.1:${port}`;
  while ((await fetch(`${url}/healthz`).catch(() => undefined))?.status !== 200) {
    if (child.exitCode !== null) throw new Error(`the bridge exited with ${child.exitCode}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { child, url };
}

/** Peak resident set of a process so far (Linux `VmHWM`), in MB. */
const peakRssMb = (pid: number) =>
  Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

const round = (value: number, digits = 1) => Math.round(value * 10 ** digits) / 10 ** digits;

async function main() {
  let bridge: ChildProcess | undefined;
  const broker = process.env.MQTT_URL ? undefined : await startMosquitto({ persistence: false });
  // Whatever happens, no bridge or broker outlives the bench.
  const abort = (why: string) => {
    log(why);
    bridge?.kill('SIGKILL');
    void broker?.dispose().finally(() => process.exit(2));
  };
  const deadline = setTimeout(() => abort(`gave up after ${DEADLINE_MS} ms`), DEADLINE_MS);
  process.once('SIGTERM', () => abort('SIGTERM'));
  process.once('SIGINT', () => abort('SIGINT'));
  const url = process.env.MQTT_URL ?? broker!.url;
  const devices = await connectDevices(url);
  try {
    // 1. The limit: the broker's raw QoS 1 pub→sub rate.
    const { rate: raw, cpu: rawCpu } = await measureRaw(url, devices, { bench: process.pid, mosquitto: broker?.pid() });
    log(
      `raw Mosquitto QoS 1 pub→sub: ${round(raw)} msg/s (${MESSAGES} messages, ${CONNECTIONS} publishers, ` +
        `${RAW_SUBSCRIBERS} subscribers sharing the subscription)`,
    );
    log(`  CPU per message (devices and subscriber in this process): ${describeCpu(rawCpu)}`);

    // 2. The bridge as a child process, delivering to a no-op sink here: with its defaults (batching), then
    //    one event per message.
    const got = receiver();
    const sink = await startSink(got);
    const sinkPort = (sink.address() as AddressInfo).port;
    const extraEnv = Object.fromEntries(
      (process.env.BENCH_BRIDGE_ENV ?? '')
        .split(/\s+/)
        .filter(Boolean)
        .map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]),
    );
    const phase = async (name: string, env: Record<string, string>) => {
      log(`— ${name}`);
      const started = await spawnBridge({
        MQTT_URL: url,
        K_SINK: `http://127.0.0.1:${sinkPort}/sink`,
        DEAD_LETTER_SINK: `http://127.0.0.1:${sinkPort}/dead-letter`,
        BRIDGE_CLIENT_ID: `${run}-${name}`,
        BRIDGE_SHARE_GROUP: `${run}-${name}`,
        BRIDGE_SESSION_EXPIRY_S: '300',
        LOG_LEVEL: process.env.BENCH_BRIDGE_LOG ?? 'warn',
        ...(process.env.BRIDGE_SESSIONS ? { BRIDGE_SESSIONS: process.env.BRIDGE_SESSIONS } : {}),
        ...extraEnv,
        ...env,
      });
      bridge = started.child;
      got.reset();
      await publishBurst(devices, 0, 2_000); // warm-up
      await got.waitFor(2_000);
      got.reset();
      const meter = cpuMeter({ bench: process.pid, bridge: bridge.pid!, mosquitto: broker?.pid() });
      // The bridge's messages in flight (received, not yet acknowledged), sampled during the burst.
      let peakInFlight = 0;
      const sampler = setInterval(async () => {
        const text = await (await fetch(`${started.url}/metrics`).catch(() => undefined))?.text();
        const now = Number(/kiot_bridge_in_flight_messages (\d+)/.exec(text ?? '')?.[1] ?? 0);
        peakInFlight = Math.max(peakInFlight, now);
      }, 200);
      const batchMeter = await bridgeBatchMeter(`${started.url}/metrics`);
      const t0 = performance.now();
      await publishBurst(devices, 0, MESSAGES);
      await got.waitFor(MESSAGES);
      clearInterval(sampler);
      const value = MESSAGES / ((got.lastAt - t0) / 1000);
      const batches = await batchMeter.since();
      // Where the CPU went (devices and the no-op sink live in this process). With every core busy, cores ÷
      // total µs is the most this pipeline can forward on this machine, whatever the bridge does.
      const cpu = meter.perUnit(MESSAGES);
      const ceiling = (cores * 1e6) / cpu.total!;
      log(
        `bridge sustained forward rate: ${round(value)} msg/s (${round(value / raw, 3)} of raw); in flight at most ${peakInFlight}`,
      );
      if (batches.batches > 0) log(`  telemetry batches: ${describeBatches(batches)}`);
      log(
        `  CPU per message: ${describeCpu(cpu)}; ${cores} cores ⇒ at most ${round(ceiling)} msg/s (${round(ceiling / raw, 3)} of raw)`,
      );
      // Latency paced at half the bridge's own sustained rate (the target's load), then at half the raw rate.
      const paced = async (rate: number, what: string) => {
        got.reset();
        const count = Math.round(rate * LATENCY_SECONDS);
        await publishPaced(devices, 0, count, rate);
        await got.waitFor(count);
        const latency = { p50: percentile(got.latencies, 50), p99: percentile(got.latencies, 99) };
        log(
          `latency at ${round(rate)} msg/s (${what}): p50 ${round(latency.p50, 2)} ms, p99 ${round(latency.p99, 2)} ms`,
        );
        return latency;
      };
      const own = await paced(value / 2, "50% of the bridge's rate");
      const halfRaw = value < raw / 2 ? undefined : await paced(raw / 2, '50% of raw');
      const rss = peakRssMb(bridge.pid!);
      const metrics = await (await fetch(`${started.url}/metrics`)).text();
      const gauge = (metric: string) =>
        round(Number(new RegExp(`^${metric}(?:\\{[^}]*\\})? ([0-9.e+]+)`, 'm').exec(metrics)?.[1] ?? NaN) / 1048576);
      log(
        `  bridge memory now: heap used ${gauge('kiot_bridge_nodejs_heap_size_used_bytes')} MB of ` +
          `${gauge('kiot_bridge_nodejs_heap_size_total_bytes')} MB, RSS ` +
          `${gauge('kiot_bridge_process_resident_memory_bytes')} MB; peak RSS ${round(rss)} MB`,
      );
      // A graceful stop (drain), as in production; SIGKILL if it takes too long.
      const exited = new Promise((resolve) => bridge!.once('exit', resolve));
      bridge.kill('SIGTERM');
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
      bridge = undefined;
      return { value, cpu, ceiling, own, halfRaw, rss, batches };
    };
    const cores = availableParallelism();
    const batched = await phase('batched', {});
    const single = await phase('single', { BATCH_MAX_COUNT: '1' });
    sink.close();
    clearTimeout(deadline);
    log(
      `batched ${round(batched.value)} msg/s (${round(batched.value / raw, 3)} of raw), one event per ` +
        `message ${round(single.value)} msg/s (${round(single.value / raw, 3)})`,
    );
    process.stdout.write(
      `${JSON.stringify({
        bench: 'bridge',
        value: round(batched.value),
        unit: 'msg/s',
        limit: round(raw),
        ratio: round(batched.value / raw, 3),
        p50_ms: round(batched.own.p50, 2),
        p99_ms: round(batched.own.p99, 2),
        p99_ms_at_half_raw: batched.halfRaw ? round(batched.halfRaw.p99, 2) : null,
        rss_mb: round(batched.rss),
        cpu_us_per_msg: batched.cpu,
        cpu_ceiling_msg_s: round(batched.ceiling),
        // The burst's batches: how many, messages per batch, and what closed them (count, bytes, linger).
        batches: batched.batches.batches,
        messages_per_batch: round(batched.batches.messages / Math.max(1, batched.batches.batches)),
        batch_close_reasons: batched.batches.byReason,
        single_value: round(single.value),
        single_ratio: round(single.value / raw, 3),
        single_p99_ms: round(single.own.p99, 2),
        single_cpu_us_per_msg: single.cpu,
        single_rss_mb: round(single.rss),
        raw_cpu_us_per_msg: rawCpu,
        cores,
      })}\n`,
    );
  } finally {
    bridge?.kill('SIGKILL');
    await Promise.all(devices.map((client) => client.endAsync(true)));
    await broker?.dispose();
  }
  process.exit(0);
}

await main();
