import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { waitHealthy } from './health.js';

/** A long-running component of the local stack: the router, the bridge, a function. */
export interface ComponentSpec {
  name: string;
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  /** Its stdout and stderr, appended across restarts. */
  logFile: string;
  /** GET answers 2xx once it is ready (and again after each restart). */
  healthUrl: string;
}

/**
 * When a component dies unexpectedly it is started again after `initialDelayMs`, doubling up to
 * `maxDelayMs` while it keeps dying soon after each start. A run of `stableAfterMs` or more counts as
 * recovered (the count starts over); after `maxRestarts` quick deaths in a row it is given up on.
 */
export interface RestartPolicy {
  initialDelayMs: number;
  maxDelayMs: number;
  maxRestarts: number;
  stableAfterMs: number;
  /** How long a (re)started component has to answer its health check. */
  readyTimeoutMs: number;
  /** How long a stop waits after SIGTERM before SIGKILL. */
  stopTimeoutMs: number;
}

export const DEFAULT_POLICY: RestartPolicy = {
  initialDelayMs: 500,
  maxDelayMs: 8_000,
  maxRestarts: 5,
  stableAfterMs: 30_000,
  readyTimeoutMs: 30_000,
  stopTimeoutMs: 25_000,
};

/** The exit status of a deployable whose settings are wrong (shared/fatal-errors.ts): a restart cannot help. */
const EXIT_CONFIGURATION = 78;

export type ComponentState = 'starting' | 'up' | 'restarting' | 'failed' | 'stopped';

export interface Supervisor {
  /** Starts a component and resolves once it is healthy; rejects (and stops it) if it is not. */
  start(spec: ComponentSpec): Promise<void>;
  /** Stops a component for good: SIGTERM, then SIGKILL after `stopTimeoutMs`. Never restarts it. */
  stop(name: string): Promise<void>;
  state(name: string): ComponentState | undefined;
  pid(name: string): number | undefined;
}

interface Running {
  spec: ComponentSpec;
  state: ComponentState;
  child?: ChildProcess;
  startedAt: number;
  /** Quick deaths in a row. */
  crashes: number;
  exited?: Promise<void>;
}

/**
 * Runs the stack's components as child processes, each in a session of its own (a Ctrl-C reaches the stack,
 * which stops them in order), and restarts one that exits when nobody asked it to. Every death, restart
 * and give-up is a line through `say`.
 */
export function createSupervisor(say: (line: string) => void, policy: RestartPolicy = DEFAULT_POLICY): Supervisor {
  const components = new Map<string, Running>();

  function launch(running: Running): ChildProcess {
    const { spec } = running;
    const log = openSync(spec.logFile, 'a');
    const child = spawn(spec.command, spec.args, { env: spec.env, stdio: ['ignore', log, log], detached: true });
    closeSync(log);
    running.child = child;
    running.startedAt = Date.now();
    running.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        resolve();
        if (running.child === child) void onExit(running, code, signal);
      }),
    );
    return child;
  }

  async function onExit(running: Running, code: number | null, signal: NodeJS.Signals | null): Promise<void> {
    const { spec } = running;
    // A first start that fails is start()'s to report; a stopped or given-up component stays down.
    if (running.state === 'starting' || running.state === 'stopped' || running.state === 'failed') return;
    running.child = undefined;
    const how = signal ? `was killed by ${signal}` : `exited with status ${code}`;
    const ranMs = Date.now() - running.startedAt;
    if (code === EXIT_CONFIGURATION) {
      running.state = 'failed';
      say(`${spec.name} ${how}: its configuration is invalid, so it is not restarted. ${logTail(spec.logFile)}`);
      return;
    }
    running.crashes = ranMs >= policy.stableAfterMs ? 1 : running.crashes + 1;
    if (running.crashes > policy.maxRestarts) {
      running.state = 'failed';
      say(
        `GIVING UP on ${spec.name}: it ${how}, the ${ordinal(running.crashes)} time in a row within ` +
          `${seconds(policy.stableAfterMs)} of starting. The rest of the stack runs on without it. ${logTail(spec.logFile)}`,
      );
      return;
    }
    const wait = Math.min(policy.initialDelayMs * 2 ** (running.crashes - 1), policy.maxDelayMs);
    running.state = 'restarting';
    say(
      `${spec.name} ${how} after ${seconds(ranMs)}; restarting it in ${seconds(wait)} ` +
        `(restart ${running.crashes} of at most ${policy.maxRestarts} in a row)`,
    );
    await delay(wait);
    if (running.state !== 'restarting') return;
    appendLine(spec.logFile, `--- ${new Date().toISOString()} restarted by the stack after it ${how} ---`);
    const child = launch(running);
    const healthy = await waitHealthy(spec.healthUrl, {
      timeoutMs: policy.readyTimeoutMs,
      alive: () => running.child === child && child.exitCode === null && child.signalCode === null,
    });
    // Meanwhile it may have died again (a new restart is under way) or been stopped.
    if (!stillRestarting(running, child)) return;
    if (healthy) {
      running.state = 'up';
      say(`${spec.name} restarted (pid ${child.pid}) and healthy after ${seconds(Date.now() - running.startedAt)}`);
    } else {
      say(`${spec.name} did not become healthy within ${seconds(policy.readyTimeoutMs)} of its restart; killing it`);
      child.kill('SIGKILL');
    }
  }

  async function stopRunning(running: Running): Promise<void> {
    running.state = 'stopped';
    const child = running.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const killed = setTimeout(() => child.kill('SIGKILL'), policy.stopTimeoutMs);
    await running.exited;
    clearTimeout(killed);
  }

  return {
    async start(spec) {
      const running: Running = { spec, state: 'starting', startedAt: Date.now(), crashes: 0 };
      components.set(spec.name, running);
      const child = launch(running);
      const healthy = await waitHealthy(spec.healthUrl, {
        timeoutMs: policy.readyTimeoutMs,
        alive: () => child.exitCode === null && child.signalCode === null,
      });
      if (!healthy) {
        await stopRunning(running);
        throw new Error(`${spec.name} did not become healthy at ${spec.healthUrl}. ${logTail(spec.logFile)}`);
      }
      if (running.state === 'starting') running.state = 'up';
    },
    async stop(name) {
      const running = components.get(name);
      if (running) await stopRunning(running);
    },
    state: (name) => components.get(name)?.state,
    pid: (name) => components.get(name)?.child?.pid,
  };
}

const stillRestarting = (running: Running, child: ChildProcess) =>
  running.child === child && running.state === 'restarting';

function appendLine(file: string, line: string): void {
  const fd = openSync(file, 'a');
  writeSync(fd, `${line}\n`);
  closeSync(fd);
}

/** The end of a component's log, to print beside the news that it died for good. */
function logTail(file: string, lines = 15): string {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return `(no log at ${file})`;
  }
  const tail = text.trimEnd().split('\n').slice(-lines);
  return `Last lines of ${file}:\n${tail.map((line) => `    ${line.slice(0, 300)}`).join('\n')}`;
}

const seconds = (ms: number) => `${ms < 10_000 ? (ms / 1000).toFixed(1) : Math.round(ms / 1000)} s`;
const ordinal = (n: number) =>
  `${n}${n % 10 === 1 && n !== 11 ? 'st' : n % 10 === 2 && n !== 12 ? 'nd' : n % 10 === 3 && n !== 13 ? 'rd' : 'th'}`;
