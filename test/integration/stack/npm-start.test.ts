import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../../unit/knative/lib/manifests.js';

// `npm start` as a user runs it — services, router, bridge, functions, simulated fleet — in a network
// namespace of its own (its dev ports never meet anything else on the machine) and in a copy of the
// repository (its own dist/ and .kiot/dev/). The bridge and telemetry-ingest die under it; both come back,
// the stored count grows again and every sample the devices sent before, during and after is stored.
describe('npm start: a supervised stack', () => {
  let copy: string;
  let stack: ChildProcess;
  let output = '';
  let exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  beforeAll(async () => {
    const unshare = spawnSync('unshare', ['--net', 'true']);
    if (unshare.status !== 0)
      throw new Error(`this test runs the stack in a network namespace: unshare --net failed (${unshare.stderr})`);
    copy = mkdtempSync(join(tmpdir(), 'kiot-npm-start-'));
    const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT })
      .toString()
      .split('\0')
      .filter((file) => file && existsSync(join(ROOT, file)));
    for (const file of files) {
      mkdirSync(dirname(join(copy, file)), { recursive: true });
      // Timestamps kept: package-lock.json must not look newer than node_modules (npm start would reinstall).
      cpSync(join(ROOT, file), join(copy, file), { preserveTimestamps: true });
    }
    symlinkSync(join(ROOT, 'node_modules'), join(copy, 'node_modules'));
    const classpath = join(ROOT, '.kiot', 'mongo-classpath.txt');
    if (existsSync(classpath))
      cpSync(classpath, join(copy, '.kiot', 'mongo-classpath.txt'), { preserveTimestamps: true });

    const env: NodeJS.ProcessEnv = { ...process.env, SIM_DEVICES: '3', SIM_RATE: '4', SIM_PROGRESS_EVERY: '1' };
    for (const name of ['MQTT_URL', 'REDIS_URL', 'MONGODB_URL', 'KIOT_EXTERNAL_MONGODB', 'KIOT_PROFILE'])
      delete env[name];
    env.KIOT_REPORT_AFTER = '3600';
    env.KIOT_EXAMPLE_ROLLOUT = '0';
    // A process group of its own, as a terminal gives `npm start`: the Ctrl-C at the end goes to all of it.
    stack = spawn('unshare', ['--net', 'bash', '-c', 'ip link set lo up && exec npm start'], {
      cwd: copy,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    stack.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    stack.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    exited = new Promise((resolve) => stack.once('exit', (code, signal) => resolve({ code, signal })));
    await until(() => /^simulator: 3\/3 online · sent [1-9]/m.test(output), 'the fleet sending', 240_000);
  }, 300_000);

  afterAll(async () => {
    if (stack && stack.exitCode === null && stack.signalCode === null) {
      process.kill(-stack.pid!, 'SIGINT');
      await Promise.race([exited, delay(60_000)]);
      if (stack.exitCode === null) process.kill(-stack.pid!, 'SIGKILL');
    }
    // Whatever of ours survived (a failed run): the components and the services, found by their directory.
    for (const pid of processesIn(copy ?? '/nonexistent')) process.kill(pid, 'SIGKILL');
    if (copy) rmSync(copy, { recursive: true, force: true });
  }, 120_000);

  const lines = () => output.split('\n');
  /** Counts of the stored samples, per device the sequence numbers of its msgIds (`<time>-<seq>`). */
  const stored = () => {
    const script = `
      import { MongoClient } from 'mongodb';
      const client = await MongoClient.connect('mongodb://127.0.0.1:27017', { serverSelectionTimeoutMS: 5000 });
      const docs = await client.db('kiot').collection('telemetry').find({}, { projection: { deviceId: 1, msgId: 1 } }).toArray();
      await client.close();
      const perDevice = {};
      for (const doc of docs) (perDevice[doc.deviceId] ??= []).push(Number(doc.msgId.split('-').pop()));
      process.stdout.write(JSON.stringify({ count: docs.length, perDevice }));`;
    // The stack's MongoDB listens on the namespace's loopback: ask from inside it.
    const result = spawnSync(
      'nsenter',
      [`--net=/proc/${stack.pid}/ns/net`, process.execPath, '--input-type=module', '-e', script],
      { cwd: copy, encoding: 'utf8', timeout: 30_000 },
    );
    if (result.status !== 0) throw new Error(`reading the stack's MongoDB failed: ${result.stderr}`);
    return JSON.parse(result.stdout) as { count: number; perDevice: Record<string, number[]> };
  };
  const componentPid = (name: string) => {
    const pids = processesIn(copy, `dist/${name}.js`);
    expect(pids, `one ${name} process`).toHaveLength(1);
    return pids[0]!;
  };

  it('names a component that stops answering in the progress line', async () => {
    const pid = componentPid('telemetry-ingest');
    process.kill(pid, 'SIGSTOP');
    const mark = output.length;
    try {
      await until(
        () => /^simulator: .* · DOWN: telemetry-ingest$/m.test(output.slice(mark)),
        'DOWN in the progress line',
      );
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    const resumed = output.length;
    await until(
      () => /^simulator: \d+\/3 online · sent \d+ .*errors received \d+$/m.test(output.slice(resumed)),
      'all up',
    );
  }, 120_000);

  it('restarts the bridge and telemetry-ingest when they are killed, says so, and nothing is lost', async () => {
    const before = stored().count;
    expect(before).toBeGreaterThan(0);
    const bridge = componentPid('bridge');
    const ingest = componentPid('telemetry-ingest');
    process.kill(bridge, 'SIGKILL');
    process.kill(ingest, 'SIGKILL');
    await until(
      () =>
        ['bridge', 'telemetry-ingest'].every((name) =>
          lines().some((l) => l.startsWith(`stack: ${name} restarted (pid`)),
        ),
      'both restarted',
      120_000,
    );
    for (const name of ['bridge', 'telemetry-ingest']) {
      expect(lines()).toContainEqual(
        expect.stringMatching(
          new RegExp(
            `^stack: ${name} was killed by SIGKILL after [\\d.]+ s; restarting it in 0\\.5 s \\(restart 1 of at most 5 in a row\\)$`,
          ),
        ),
      );
      expect(componentPid(name)).not.toBe(name === 'bridge' ? bridge : ingest);
    }

    // Ingestion resumes: the count grows past what it was after the restarts.
    const afterRestarts = stored().count;
    await until(() => stored().count > afterRestarts, 'the stored count growing again', 120_000);
    // Nothing lost: every sample up to the newest one stored now (sent after the restarts) gets stored, each once.
    const newest = Object.fromEntries(Object.entries(stored().perDevice).map(([id, seqs]) => [id, Math.max(...seqs)]));
    expect(Object.keys(newest)).toHaveLength(3);
    await until(
      () => {
        const now = stored().perDevice;
        return Object.entries(newest).every(([id, max]) => new Set(now[id]!.filter((seq) => seq <= max)).size === max);
      },
      'every sample up to the newest stored',
      180_000,
    );
    for (const seqs of Object.values(stored().perDevice)) expect(new Set(seqs).size).toBe(seqs.length);
    expect(output).not.toMatch(/GIVING UP/);
  }, 400_000);

  it('stops in order on Ctrl-C: nothing restarted, the services stopped', async () => {
    const mark = output.length;
    process.kill(-stack.pid!, 'SIGINT');
    // stack.sh exits 0; npm, Ctrl-C'd too, then ends itself with SIGINT (as it does in a terminal).
    const { code, signal } = await exited;
    const tail = output.slice(mark);
    expect(code === 0 || signal === 'SIGINT', `${code} ${signal}: ${tail}`).toBe(true);
    expect(tail).toContain('stack: stopping the stack…');
    expect(tail).toMatch(/simulator: stopped after \d+ messages/);
    expect(tail).toContain('[services:dev] stopped mongo');
    expect(tail).not.toMatch(/restarting it in/);
    expect(processesIn(copy)).toEqual([]);
  }, 120_000);
});

async function until(condition: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(250);
  }
}

/** Processes whose working directory is `dir` (all of the copied stack's), optionally with `arg` on their command line. */
function processesIn(dir: string, arg?: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readlinkSync(`/proc/${entry}/cwd`) !== dir) continue;
      const command = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (arg === undefined || command.includes(arg)) pids.push(Number(entry));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}
