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
import { takeTurn } from './exclusive.js';

/**
 * `npm start` as a user runs it, in a network namespace of its own (its fixed dev ports never meet anything
 * else on the machine) and in a copy of the repository (its own dist/ and .kiot/dev/). What runs inside the
 * namespace (a script, a browser) is started with `nsenter --net` on the stack's namespace.
 */
export interface IsolatedStack {
  /** The copy of the repository the stack runs in. */
  dir: string;
  /** The `unshare` process: its network namespace is the stack's. */
  pid: number;
  output(): string;
  /** How `npm start` ended (its process group got the Ctrl-C). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Runs `command args` inside the stack's network namespace, in the copy. */
  runInside(
    command: string,
    args: string[],
    timeoutMs?: number,
  ): { status: number | null; stdout: string; stderr: string };
  /** Ctrl-C as a terminal sends it, then whatever of ours survived is killed; the copy is removed. */
  stop(): Promise<void>;
}

export async function waitUntil(condition: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(250);
  }
}

/** Processes whose working directory is `dir` (all of the copied stack's), optionally with `arg` on their command line. */
export function processesIn(dir: string, arg?: string): number[] {
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

/** The repository's tracked and new files, copied with their timestamps; node_modules linked. */
function copyRepository(root: string, prefix: string): string {
  const copy = mkdtempSync(join(tmpdir(), prefix));
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: root })
    .toString()
    .split('\0')
    .filter((file) => file && existsSync(join(root, file)));
  for (const file of files) {
    mkdirSync(dirname(join(copy, file)), { recursive: true });
    // Timestamps kept: package-lock.json must not look newer than node_modules (npm start would reinstall).
    cpSync(join(root, file), join(copy, file), { preserveTimestamps: true });
  }
  symlinkSync(join(root, 'node_modules'), join(copy, 'node_modules'));
  const classpath = join(root, '.kiot', 'mongo-classpath.txt');
  if (existsSync(classpath))
    cpSync(classpath, join(copy, '.kiot', 'mongo-classpath.txt'), { preserveTimestamps: true });
  return copy;
}

export async function startIsolatedStack(options: {
  root: string;
  env: Record<string, string>;
  /** The stack is up once its output matches this. */
  ready: RegExp;
  readyTimeoutMs?: number;
  prefix?: string;
}): Promise<IsolatedStack> {
  const unshare = spawnSync('unshare', ['--net', 'true']);
  if (unshare.status !== 0)
    throw new Error(`this test runs the stack in a network namespace: unshare --net failed (${unshare.stderr})`);
  const release = await takeTurn('npm-start');
  const dir = copyRepository(options.root, options.prefix ?? 'kiot-stack-');
  const env: NodeJS.ProcessEnv = { ...process.env, ...options.env };
  // The stack in its namespace runs on npm start's own defaults: the URLs and ports of the test run's services
  // (KIOT_*_PORT moves them off the defaults when those are taken on the host) are not its own, nor is their data
  // folder (KIOT_DATA_DIR): the stack's services would take over the test services' pid files and stop them.
  const inherited = ['MQTT_URL', 'REDIS_URL', 'MONGODB_URL', 'KIOT_EXTERNAL_MONGODB', 'KIOT_PROFILE', 'KIOT_DATA_DIR'];
  for (const name of [...inherited, 'KIOT_MQTT_PORT', 'KIOT_REDIS_PORT', 'KIOT_MONGO_PORT']) delete env[name];
  let output = '';
  // A process group of its own, as a terminal gives `npm start`: the Ctrl-C at the end goes to all of it.
  const stack: ChildProcess = spawn('unshare', ['--net', 'bash', '-c', 'ip link set lo up && exec npm start'], {
    cwd: dir,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  stack.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  stack.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    stack.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const handle: IsolatedStack = {
    dir,
    pid: stack.pid!,
    output: () => output,
    exited,
    runInside(command, args, timeoutMs = 30_000) {
      const result = spawnSync('nsenter', [`--net=/proc/${stack.pid}/ns/net`, command, ...args], {
        cwd: dir,
        encoding: 'utf8',
        timeout: timeoutMs,
      });
      return { status: result.status, stdout: result.stdout, stderr: result.stderr };
    },
    async stop() {
      const signal = (pid: number, name: NodeJS.Signals) => {
        try {
          process.kill(pid, name);
        } catch {
          // already gone
        }
      };
      if (stack.exitCode === null && stack.signalCode === null) {
        signal(-stack.pid!, 'SIGINT');
        await Promise.race([exited, delay(60_000)]);
        if (stack.exitCode === null) signal(-stack.pid!, 'SIGKILL');
      }
      for (const pid of processesIn(dir)) signal(pid, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      release();
    },
  };
  try {
    await waitUntil(
      () => options.ready.test(output) || stack.exitCode !== null,
      `the stack to be ready (${options.ready})`,
      options.readyTimeoutMs ?? 240_000,
    );
    if (stack.exitCode !== null) throw new Error(`npm start exited with ${stack.exitCode}:\n${output.slice(-3_000)}`);
  } catch (error) {
    await handle.stop();
    throw error;
  }
  return handle;
}
