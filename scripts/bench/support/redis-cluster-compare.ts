// `npm run bench:ingest -- --redis-cluster`: the same ingest benchmark against one Redis node and against a
// local Redis Cluster (three masters, three replicas; scripts/redis-topologies.sh), in the same run. Both are
// private (free ports, no persistence, as the test topologies), so neither competes with the shared test
// services. The benchmark runs as a child once per store, in pairs of alternating order (single, cluster,
// cluster, single, …) so that a drift of the machine's load does not favour either; the figure is the median
// stored rate of each. Ends with one JSON line {"bench":"ingest-redis-cluster","value":<cluster msg/s>,
// "limit":<single-node msg/s>,"ratio":…}. Target: ratio ≥ 0.9.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, waitForPort } from '../../../test/support/ports.js';
import { cpuSeconds } from './cpu.js';

const run = promisify(execFile);
const log = (...parts: unknown[]) => process.stderr.write(`${parts.map(String).join(' ')}\n`);
const PAIRS = Number(process.env.BENCH_REDIS_PAIRS ?? 2);

interface Store {
  name: 'single' | 'cluster';
  url: string;
  pids: number[];
  /** The ports of its nodes (masters and replicas): commands are counted on the masters. */
  ports: number[];
}

interface Outcome {
  store: Store['name'];
  stored: number;
  storageStep: number;
  /** CPU µs of the store's Redis processes per message through the function (all phases). */
  redisUsPerMessage: number;
  /** Commands the store's masters executed per message (INFO commandstats; load does not change it). */
  commandsPerMessage: number;
}

/** Commands executed so far by the masters among `ports` (a replica's replicated writes are not counted). */
async function commandsServed(ports: number[]): Promise<number> {
  let total = 0;
  for (const port of ports) {
    const info = (await run('redis-cli', ['-p', String(port), 'INFO', 'all'])).stdout;
    if (!/^role:master/m.test(info)) continue;
    for (const match of info.matchAll(/^cmdstat_[^:]+:calls=(\d+)/gm)) total += Number(match[1]);
  }
  return total;
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/** Messages that pass through the function in one run of the ingest benchmark (warm-up, sustained, paced, storage). */
function messagesPerRun(): number {
  const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
  return 2_000 + 2 * env('BENCH_MESSAGES', 30_000) + env('BENCH_PACED_RATE', 1_000) * env('BENCH_PACED_SECONDS', 10);
}

async function benchOnce(bundle: string, store: Store): Promise<Outcome> {
  const before = store.pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
  const commandsBefore = await commandsServed(store.ports);
  const child = spawn(process.execPath, [bundle], {
    env: { ...process.env, REDIS_URL: store.url },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`the ingest benchmark on ${store.name} exited with ${code}`);
  const result = JSON.parse(stdout.trim().split('\n').pop()!) as { value: number; storage_step: number };
  const cpu = store.pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0) - before;
  const commands = (await commandsServed(store.ports)) - commandsBefore;
  return {
    store: store.name,
    stored: result.value,
    storageStep: result.storage_step,
    redisUsPerMessage: Math.round((cpu * 1e6) / messagesPerRun()),
    commandsPerMessage: Math.round((commands / messagesPerRun()) * 100) / 100,
  };
}

async function startSingle(): Promise<{ store: Store; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn(
    'redis-server',
    ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no'],
    {
      stdio: 'ignore',
    },
  );
  await waitForPort(port, child);
  return { store: { name: 'single', url: `redis://127.0.0.1:${port}`, pids: [child.pid!], ports: [port] }, child };
}

async function startCluster(dir: string): Promise<Store> {
  const env = { ...process.env, REDIS_TOPOLOGY_DIR: dir, REDIS_TOPOLOGY_PORTS: 'free' };
  await run('bash', ['scripts/redis-topologies.sh', 'start', 'cluster'], { env });
  const { stdout } = await run('bash', ['scripts/redis-topologies.sh', 'env'], { env });
  const { stdout: status } = await run('bash', ['scripts/redis-topologies.sh', 'status'], { env }).catch(
    (error: { stdout: string }) => error,
  );
  const nodes = [...status.matchAll(/^cluster-(\d+) running \(pid (\d+)\)/gm)];
  const pids = nodes.map((m) => Number(m[2]));
  const ports = nodes.map((m) => Number(m[1]));
  return { name: 'cluster', url: /^REDIS_CLUSTER_URL=(.*)$/m.exec(stdout)![1]!, pids, ports };
}

export async function compareOnRedisCluster(bundle: string): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'kiot-bench-redis-'));
  const single = await startSingle();
  try {
    const cluster = await startCluster(dir);
    log(
      `load average before: ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    );
    log(`single node ${single.store.url}; cluster ${cluster.url} (${cluster.pids.length} nodes)`);
    const outcomes: Outcome[] = [];
    for (let pair = 0; pair < PAIRS; pair += 1) {
      const order = pair % 2 === 0 ? [single.store, cluster] : [cluster, single.store];
      for (const store of order) {
        log(`--- run ${outcomes.length + 1}: ${store.name}`);
        const outcome = await benchOnce(bundle, store);
        log(
          `${store.name}: stored ${outcome.stored} msg/s, storage step ${outcome.storageStep} msg/s, Redis ` +
            `${outcome.redisUsPerMessage} µs CPU and ${outcome.commandsPerMessage} commands per message`,
        );
        outcomes.push(outcome);
      }
    }
    const of = (name: Store['name'], pick: (o: Outcome) => number) =>
      median(outcomes.filter((o) => o.store === name).map(pick));
    const stored = { single: of('single', (o) => o.stored), cluster: of('cluster', (o) => o.stored) };
    const storage = { single: of('single', (o) => o.storageStep), cluster: of('cluster', (o) => o.storageStep) };
    const ratio = Math.round((stored.cluster / stored.single) * 100) / 100;
    log(
      `stored (end to end, median of ${PAIRS}): cluster ${stored.cluster} msg/s vs single node ${stored.single} msg/s = ${ratio} (target ≥ 0.9)`,
    );
    log(
      `storage step: cluster ${storage.cluster} vs single ${storage.single} = ${(storage.cluster / storage.single).toFixed(2)}; load average after: ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    );
    const result = {
      bench: 'ingest-redis-cluster',
      value: stored.cluster,
      unit: 'msg/s',
      limit: stored.single,
      ratio,
      storage_step: storage.cluster,
      storage_step_single: storage.single,
      storage_ratio: Math.round((storage.cluster / storage.single) * 100) / 100,
      redis_cpu_us_per_msg: {
        single: of('single', (o) => o.redisUsPerMessage),
        cluster: of('cluster', (o) => o.redisUsPerMessage),
      },
      redis_commands_per_msg: {
        single: of('single', (o) => o.commandsPerMessage),
        cluster: of('cluster', (o) => o.commandsPerMessage),
      },
      load_average: loadavg().map((l) => Math.round(l * 100) / 100),
      runs: outcomes,
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    single.child.kill('SIGTERM');
    await run('bash', ['scripts/redis-topologies.sh', 'stop'], {
      env: { ...process.env, REDIS_TOPOLOGY_DIR: dir },
    }).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}
