// Cold start of every deployable: process start to the first 2xx of a real request (GET /healthz, which
// touches the real services), next to a bare Node HTTP server started the same way in the same run; bundle
// sizes and resident memory once ready. Beside them the framework floor: the functions framework serving a
// one-line function, the least any deployable of this architecture can cost. Several runs, in rotating order, medians reported.
//   npm run bench:coldstart            (BENCH_RUNS=7, services from REDIS_URL / MONGODB_URL, a private Mosquitto;
//                                      BENCH_ONLY=api-keys,bridge measures those deployables only;
//                                      BENCH_BEFORE_DIST=<another build's dist/> starts its deployables too, as
//                                      <name>@before, in the same rotation: a change measured against its
//                                      baseline under the same load, which a shared machine's runs never share)
// The last line is one JSON object: {"bench":"coldstart","value":<slowest ms>,"limit":<framework floor ms>,"ratio",…}.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, get, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMosquitto } from '../../test/support/mosquitto.js';
import { freePort } from '../../test/support/ports.js';
import { cpuMsPrecise } from './support/cpu.js';
import { productionNodeArgs } from './support/deploy-values.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 7);
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:26379';
const MONGODB_URL = process.env.MONGODB_URL ?? 'mongodb://127.0.0.1:27027';
const RATIO_TARGET = 1.5;
const RSS_LIMIT_MB = 100;
const DIST = join(process.cwd(), 'dist');
const BEFORE_DIST = process.env.BENCH_BEFORE_DIST;

const write = (line: string) => process.stdout.write(`${line}\n`);
const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;

function deployables(dist = DIST): string[] {
  return readdirSync(dist)
    .filter((file) => /^[a-z-]+\.js$/.test(file) && !/^(bench-|router\.|simulator\.|stack\.|asyncapi\.)/.test(file))
    .map((file) => file.replace(/\.js$/, ''))
    .filter((name) => !process.env.BENCH_ONLY || process.env.BENCH_ONLY.split(',').includes(name))
    .sort();
}

/** One GET; resolves with the status, or undefined while nothing listens. */
function probe(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const request = get({ host: '127.0.0.1', port, path: '/healthz', agent: false }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode));
    });
    request.on('error', () => resolve(undefined));
    request.setTimeout(5_000, () => request.destroy());
  });
}

function rssMb(pid: number): number {
  try {
    const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
    return kb / 1024;
  } catch {
    return Number.NaN;
  }
}

interface Sample {
  ms: number;
  rssMb: number;
  /** CPU the process used until ready (its threads' scheduled time): what a start costs, whatever else runs. */
  cpuMs: number;
}

/** Starts `node <nodeArgs> <file>` and waits for its first 2xx. */
async function startOnce(file: string, env: Record<string, string>, nodeArgs: string[] = []): Promise<Sample> {
  const port = await freePort();
  const started = performance.now();
  const child = spawn(process.execPath, [...nodeArgs, file], {
    env: { ...env, PORT: String(port) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`${file} exited with ${child.exitCode}: ${stderr.slice(-500)}`);
      const status = await probe(port);
      if (status !== undefined && status >= 200 && status < 300) {
        const ms = performance.now() - started;
        return { ms, rssMb: rssMb(child.pid!), cpuMs: cpuMsPrecise(child.pid!) };
      }
      if (performance.now() - started > 30_000)
        throw new Error(`${file} not ready in 30 s (last status ${status}): ${stderr.slice(-500)}`);
      await new Promise((resolve) => setTimeout(resolve, status === undefined ? 1 : 5));
    }
  } finally {
    const exited = new Promise((resolve) =>
      child.exitCode !== null ? resolve(undefined) : child.once('exit', resolve),
    );
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }
}

async function main() {
  const names = deployables();
  if (names.length === 0) throw new Error('no deployables in dist/: run `npm run build`');
  const sink: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(202);
      res.end();
    });
  });
  await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
  const sinkUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/`;
  // A broker of its own: the bridge is ready once its sessions have subscribed, and on a shared broker its share
  // group would also take every other client's device traffic (and what queued for it between two starts).
  const broker = await startMosquitto({ persistence: false });
  const MQTT_URL = broker.url;
  const dir = mkdtempSync(join(tmpdir(), 'kiot-coldstart-'));
  const bare = join(dir, 'bare-server.mjs');
  writeFileSync(
    bare,
    "import { createServer } from 'node:http';\ncreateServer((req, res) => { res.writeHead(200); res.end('ok'); }).listen(Number(process.env.PORT));\n",
  );
  // The floor the architecture sets ("each function under the functions framework"): the framework's own
  // server for a one-line function, with none of kiot's code, started the same way.
  const floor = join(dir, 'framework-floor.cjs');
  writeFileSync(
    floor,
    [
      `const requireFromProject = require('node:module').createRequire(${JSON.stringify(join(process.cwd(), 'package.json'))});`,
      "const functions = requireFromProject('@google-cloud/functions-framework');",
      "const { getTestServer } = requireFromProject('@google-cloud/functions-framework/testing');",
      "functions.http('floor', (req, res) => res.send('ok'));",
      "getTestServer('floor').listen(Number(process.env.PORT));",
      '',
    ].join('\n'),
  );
  const suffix = `${process.pid}-${Date.now().toString(36)}`;
  // What every deployable may need, as in production (NODE_ENV, quiet logs); unknown keys are ignored by zod.
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    NODE_ENV: 'production',
    LOG_LEVEL: 'warn',
    MQTT_URL,
    REDIS_URL,
    MONGODB_URL,
    MONGODB_DB: `bench_coldstart_${suffix}`.replace(/[^A-Za-z0-9_-]/g, '_'),
    K_SINK: sinkUrl,
    DEAD_LETTER_SINK: sinkUrl,
    API_KEYS: '[]',
    PROVISIONING_REPLY_KEY: randomBytes(32).toString('base64url'),
    BRIDGE_CLIENT_ID: `bench-coldstart-${suffix}`.slice(0, 50),
    BRIDGE_SHARE_GROUP: `bench-${suffix}`,
    BRIDGE_SESSION_EXPIRY_S: '60',
    TICK_GATE_COLLECTIONS: 'commands',
    // The console's /healthz checks only its page in memory, never the functions it proxies to.
    CONSOLE_UPSTREAMS: `device-registry=${sinkUrl.replace(/\/$/, '')}`,
  };

  const targets = [
    { name: 'bare', file: bare },
    { name: 'framework-floor', file: floor },
    ...names.map((name) => ({ name, file: join(DIST, `${name}.js`) })),
    ...(BEFORE_DIST
      ? deployables(BEFORE_DIST).map((name) => ({ name: `${name}@before`, file: join(BEFORE_DIST, `${name}.js`) }))
      : []),
  ];
  const samples = new Map<string, Sample[]>(targets.map((t) => [t.name, []]));
  // One warm-up of each (the OS file cache), then RUNS rounds in rotating order so that no target always goes first.
  // Each deployable with the command line of its manifest, `node <nodeArgs> dist/<name>.js` (its heap flags,
  // knative/deploy-values.json), as deployed: its code cache was trained under those flags, and a heap sized for
  // this machine rather than the pod's would flatter it. The bare server and the floor run with Node's defaults.
  const flags = (target: string) => {
    const name = target.replace(/@before$/, '');
    return names.includes(name) ? productionNodeArgs(name) : [];
  };
  // Whatever happens to a start (a deployable that never gets ready throws), the broker it started goes too.
  try {
    for (const target of targets) await startOnce(target.file, env, flags(target.name));
    for (let run = 0; run < RUNS; run += 1) {
      for (let i = 0; i < targets.length; i += 1) {
        const target = targets[(i + run) % targets.length]!;
        samples.get(target.name)!.push(await startOnce(target.file, env, flags(target.name)));
      }
    }
  } finally {
    sink.close();
    await broker.dispose();
    rmSync(dir, { recursive: true, force: true });
  }

  const bareMs = median(samples.get('bare')!.map((s) => s.ms));
  const floorMs = median(samples.get('framework-floor')!.map((s) => s.ms));
  const floorCpuMs = median(samples.get('framework-floor')!.map((s) => s.cpuMs));
  // The limit is the framework floor of the same run (issue 14): a deployable may cost at most half of it again.
  const result: Record<string, unknown> = { bench: 'coldstart', value: 0, unit: 'ms', limit: round(floorMs), ratio: 0 };
  write(
    `runs ${RUNS}, median of each; target ≤ ${RATIO_TARGET}× the framework floor and < ${RSS_LIMIT_MB} MB ` +
      `resident; load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`,
  );
  write(
    `${'deployable'.padEnd(20)} ${'ready ms'.padStart(9)} ${'× bare'.padStart(7)} ` +
      `${'× floor'.padStart(8)} ${'CPU ms'.padStart(7)} ${'CPU × floor'.padStart(12)} ` +
      `${'RSS MB'.padStart(7)} ${'bundle KiB'.padStart(11)}`,
  );
  let slowest = 0;
  let slowestName = '';
  let maxRss = 0;
  for (const target of targets) {
    const ms = median(samples.get(target.name)!.map((s) => s.ms));
    const rss = median(samples.get(target.name)!.map((s) => s.rssMb));
    const cpuMs = median(samples.get(target.name)!.map((s) => s.cpuMs));
    const reference = target.name === 'bare' || target.name === 'framework-floor';
    const kib = reference
      ? (statSync(target.file, { throwIfNoEntry: false })?.size ?? 0)
      : // The deployables' CommonJS bundle, or the console's ES module one (scripts/build.mjs; `.bundle.js` in a
        // BENCH_BEFORE_DIST built before the launchers were CommonJS).
        (
          statSync(target.file.replace(/\.js$/, '.bundle.cjs'), { throwIfNoEntry: false }) ??
          statSync(target.file.replace(/\.js$/, '.bundle.mjs'), { throwIfNoEntry: false }) ??
          statSync(target.file.replace(/\.js$/, '.bundle.js'))
        ).size / 1024;
    write(
      `${target.name.padEnd(20)} ${ms.toFixed(1).padStart(9)} ${(ms / bareMs).toFixed(2).padStart(7)} ` +
        `${(ms / floorMs).toFixed(2).padStart(8)} ${cpuMs.toFixed(0).padStart(7)} ` +
        `${(cpuMs / floorCpuMs).toFixed(2).padStart(12)} ${rss.toFixed(1).padStart(7)} ` +
        `${reference ? '-'.padStart(11) : kib.toFixed(0).padStart(11)}`,
    );
    const key = target.name.replace(/[^a-z]/g, '_');
    result[`${key}_ms`] = round(ms);
    result[`${key}_rss_mb`] = round(rss);
    result[`${key}_cpu_ms`] = round(cpuMs);
    if (target.name === 'bare') continue;
    result[`${key}_ratio`] = round(ms / bareMs, 2);
    if (reference) continue;
    result[`${key}_ratio_to_floor`] = round(ms / floorMs, 2);
    result[`${key}_cpu_ratio_to_floor`] = round(cpuMs / floorCpuMs, 2);
    result[`${key}_bundle_kib`] = Math.round(kib);
    if (target.name.endsWith('@before')) continue;
    if (ms > slowest) {
      slowest = ms;
      slowestName = target.name;
    }
    maxRss = Math.max(maxRss, rss);
  }
  result.value = round(slowest);
  result.ratio = round(slowest / floorMs, 2);
  result.ratio_to_bare = round(slowest / bareMs, 2);
  result.slowest = slowestName;
  result.max_rss_mb = round(maxRss);
  result.runs = RUNS;
  // Under the functions framework no deployable can start faster than this: the target is reachable only if it is.
  result.framework_floor_ratio = round(floorMs / bareMs, 2);
  result.pass = slowest / floorMs <= RATIO_TARGET && maxRss < RSS_LIMIT_MB;
  result.load_average = Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
  write(JSON.stringify(result));
}

if (!existsSync(DIST)) throw new Error('dist/ is missing: run `npm run build`');
await main();
