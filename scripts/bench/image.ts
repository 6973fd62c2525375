// The image: its size, and how long a container of it takes from `run` to the first 2xx of GET /healthz (which
// touches the real services), for every deployable, next to the same bundle started as a plain process on
// the host in the same run (the limit: what the container adds is the ratio), and a bare node:http server both
// ways (what the container costs by itself). Containers run as the image
// test runs them: the manifest's command, environment and security context (read-only, non-root, no
// capabilities), the image's own node_modules. Several runs in rotating order, medians reported.
//   npm run bench:image            (BENCH_RUNS=5; builds the image first unless its inputs are unchanged)
// The last line is one JSON object: {"bench":"image","value":<slowest container ms>,"limit":<its host ms>,…}.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { type BuiltImage, buildImage, engine, runArgs } from '../../test/support/image.js';
import { freePort } from '../../test/support/ports.js';
import { uniqueName } from '../../test/support/services.js';
import { startSinkServer } from '../../test/support/sink-server.js';
import { manifestWorkloads, testValues, type Workload } from '../../test/support/workloads.js';
import { cpuSeconds } from './support/cpu.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const write = (line: string) => process.stdout.write(`${line}\n`);
const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;
const mb = (bytes: number) => bytes / 1e6;

async function firstOk(port: number, alive: () => Promise<boolean>, what: string): Promise<number> {
  for (;;) {
    const status = await fetch(`http://127.0.0.1:${port}/healthz`).then(
      (r) => r.status,
      () => undefined,
    );
    if (status !== undefined && status >= 200 && status < 300) return performance.now();
    if (!(await alive())) throw new Error(`${what} exited before it was ready`);
    await new Promise((resolve) => setTimeout(resolve, status === undefined ? 2 : 10));
  }
}

interface Sample {
  ms: number;
  cpuMs: number;
}

/** The bundle as a host process, from an image-like folder (dist/, trimmed package.json, node_modules). */
async function hostStart(dir: string, workload: Workload): Promise<Sample> {
  const port = await freePort();
  const started = performance.now();
  const child = spawn(workload.command[0]!, workload.command.slice(1), {
    cwd: dir,
    env: { PATH: process.env.PATH, ...workload.env, PORT: String(port) },
    stdio: 'ignore',
  });
  try {
    const ready = await firstOk(port, async () => child.exitCode === null, workload.name);
    return { ms: ready - started, cpuMs: cpuSeconds(child.pid!) * 1000 };
  } finally {
    const exited = new Promise((resolve) =>
      child.exitCode !== null ? resolve(undefined) : child.once('exit', resolve),
    );
    child.kill('SIGTERM');
    await exited;
  }
}

/** The same workload as a container of the image: `run` to the first 2xx through the published port. */
async function containerStart(built: BuiltImage, workload: Workload): Promise<Sample> {
  const port = await freePort();
  const name = uniqueName(`bench-${workload.name}`);
  const started = performance.now();
  await engine(built, runArgs(built, workload, name, port));
  try {
    const alive = async () =>
      (await engine(built, ['inspect', '--format', '{{.State.Running}}', name])).trim() === 'true';
    const ready = await firstOk(port, alive, name);
    const pid = Number((await engine(built, ['inspect', '--format', '{{.State.Pid}}', name])).trim());
    return { ms: ready - started, cpuMs: cpuSeconds(pid) * 1000 };
  } finally {
    await engine(built, ['rm', '--force', '--time', '30', name]).catch(() => undefined);
  }
}

async function imageSizes(built: BuiltImage) {
  const size = async (image: string) =>
    Number((await engine(built, ['image', 'inspect', '--format', '{{.Size}}', image])).trim());
  const base = built.base.includes('/') ? built.base : `docker.io/library/${built.base}`;
  // What a registry stores and a node pulls: the layers gzip-compressed (as `save` streams them, then gzip).
  const dir = mkdtempSync(join(tmpdir(), 'kiot-bench-image-'));
  const compressed = async (image: string) => {
    const archive = join(dir, 'image.tar');
    await engine(built, ['save', '--output', archive, image], { timeoutMs: 300_000 });
    const bytes = gzipSync(readFileSync(archive), { level: 6 }).length;
    rmSync(archive);
    return bytes;
  };
  try {
    return {
      image: await size(built.image),
      base: await size(base),
      compressed: await compressed(built.image),
      baseCompressed: await compressed(base),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main() {
  const built = await buildImage();
  write(
    `image ${built.image} (${built.engine}; base ${built.base}: ${built.baseSource}) ${built.reused ? 'reused' : `built in ${built.seconds.total} s`}`,
  );
  const sizes = await imageSizes(built);
  write(
    `size ${mb(sizes.image).toFixed(1)} MB (base ${mb(sizes.base).toFixed(1)} MB + kiot ` +
      `${mb(sizes.image - sizes.base).toFixed(1)} MB); gzip-compressed ${mb(sizes.compressed).toFixed(1)} ` +
      `MB (base ${mb(sizes.baseCompressed).toFixed(1)} MB)`,
  );

  // The host process gets the image's own files (dist/, package.json, node_modules), copied out of it.
  const dir = mkdtempSync(join(tmpdir(), 'kiot-bench-host-'));
  const holder = uniqueName('bench-copy');
  await engine(built, ['create', '--name', holder, built.image]);
  await engine(built, ['cp', `${holder}:/app/.`, dir]);
  await engine(built, ['rm', holder]);
  const sink = await startSinkServer();
  const db = `bench_image_${process.pid}`;
  const deployables = manifestWorkloads((name, key) =>
    name === 'LOG_LEVEL' ? 'warn' : testValues(sink.url, db)(name, key),
  ).filter((w) => existsSync(join(dir, 'dist', `${w.bundle}.js`)));
  // The floor: a bare node:http server, the same way in both (the container under a function's security
  // context), so that what the container itself adds shows apart from what kiot's processes load.
  const bare: Workload = {
    ...deployables.find((w) => w.kind === 'Service')!,
    name: 'bare-node-http',
    bundle: 'bare',
    command: [
      'node',
      '-e',
      "require('node:http').createServer((q, r) => r.end('ok')).listen(Number(process.env.PORT))",
    ],
    env: { PORT: '8080' },
  };
  const workloads = [bare, ...deployables];

  const samples = new Map<string, { host: Sample[]; container: Sample[] }>(
    workloads.map((w) => [w.name, { host: [], container: [] }]),
  );
  // One warm-up of each (page cache, the engine's storage), then RUNS rounds in rotating order.
  for (const workload of workloads) {
    await hostStart(dir, workload);
    await containerStart(built, workload);
  }
  for (let run = 0; run < RUNS; run += 1) {
    for (let i = 0; i < workloads.length; i += 1) {
      const workload = workloads[(i + run) % workloads.length]!;
      const entry = samples.get(workload.name)!;
      entry.host.push(await hostStart(dir, workload));
      entry.container.push(await containerStart(built, workload));
    }
  }
  await sink.close();
  rmSync(dir, { recursive: true, force: true });

  write(`runs ${RUNS}, median of each: start to the first 2xx of GET /healthz, and the process's CPU until then`);
  write(
    `${'workload'.padEnd(20)} ${'host ms'.padStart(8)} ${'container ms'.padStart(13)} ` +
      `${'× host'.padStart(7)} ${'+ ms'.padStart(7)} ${'CPU ms host/ctr'.padStart(16)}`,
  );
  const result: Record<string, unknown> = { bench: 'image', value: 0, unit: 'ms', limit: 0, ratio: 0 };
  let slowest = { name: '', host: 0, container: 0 };
  for (const workload of workloads) {
    const entry = samples.get(workload.name)!;
    const host = median(entry.host.map((s) => s.ms));
    const container = median(entry.container.map((s) => s.ms));
    const cpuHost = median(entry.host.map((s) => s.cpuMs));
    const cpuContainer = median(entry.container.map((s) => s.cpuMs));
    write(
      `${workload.name.padEnd(20)} ${host.toFixed(0).padStart(8)} ${container.toFixed(0).padStart(13)} ` +
        `${(container / host).toFixed(2).padStart(7)} ${(container - host).toFixed(0).padStart(7)} ` +
        `${`${cpuHost.toFixed(0)}/${cpuContainer.toFixed(0)}`.padStart(16)}`,
    );
    const key = workload.name.replace(/-/g, '_');
    Object.assign(result, {
      [`${key}_host_ms`]: round(host),
      [`${key}_container_ms`]: round(container),
      [`${key}_ratio`]: round(container / host, 2),
      [`${key}_cpu_ms_host`]: round(cpuHost),
      [`${key}_cpu_ms_container`]: round(cpuContainer),
    });
    if (workload !== bare && container > slowest.container) slowest = { name: workload.name, host, container };
  }
  Object.assign(result, {
    value: round(slowest.container),
    limit: round(slowest.host),
    ratio: round(slowest.container / slowest.host, 2),
    slowest: slowest.name,
    image_mb: round(mb(sizes.image)),
    base_mb: round(mb(sizes.base)),
    kiot_mb: round(mb(sizes.image - sizes.base)),
    compressed_mb: round(mb(sizes.compressed)),
    base_compressed_mb: round(mb(sizes.baseCompressed)),
    engine: built.engine,
    runs: RUNS,
  });
  write(JSON.stringify(result));
}

await main();
