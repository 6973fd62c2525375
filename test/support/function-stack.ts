import { type ChildProcess, spawn } from 'node:child_process';
import { mintApiKey } from '../../shared/api-keys.js';
import { buildBundles } from '../unit/knative/lib/build.js';
import { components } from '../unit/knative/lib/components.js';
import { ROOT } from '../unit/knative/lib/manifests.js';
import { freePort, waitForPort } from './ports.js';
import { uniqueName } from './services.js';
import { manifestWorkloads, testValues } from './workloads.js';

// Every function of knative/ as a host process, started as its manifest says (command, environment, the
// ConfigMap's values; Secrets and cluster addresses replaced by the test services), on a free loopback port,
// against a database of its own, with one bootstrap admin key: the app plane of a running stack, over HTTP.

export interface RunningFunction {
  /** The Knative Service's name. */
  name: string;
  bundle: string;
  base: string;
  port: number;
  child: ChildProcess;
  output: () => string;
}

export interface FunctionStack {
  functions: RunningFunction[];
  /** The bootstrap admin key (every scope). */
  adminKey: string;
  db: string;
  stop(): Promise<void>;
}

/**
 * Starts the Knative Services of knative/ whose bundle exists (`only` narrows them by Service name). `sink` is
 * where their events go (K_SINK and DEAD_LETTER_SINK).
 */
export async function startFunctionStack(options: {
  sink: string;
  only?: (name: string) => boolean;
  env?: Record<string, string>;
}): Promise<FunctionStack> {
  buildBundles();
  const landed = new Set(components().map((c) => c.name));
  const db = uniqueName('fs')
    .replace(/[^A-Za-z0-9_-]/g, '_')
    .slice(0, 60);
  const { key, entry } = await mintApiKey('contract-admin', ['*']);
  const values = testValues(options.sink, db);
  const workloads = manifestWorkloads((name, ref) =>
    name === 'LOG_LEVEL' ? 'warn' : ref === 'API_KEYS' ? JSON.stringify([entry]) : values(name, ref),
  ).filter((w) => w.kind === 'Service' && landed.has(w.bundle) && (options.only?.(w.name) ?? true));
  const functions: RunningFunction[] = [];
  const stop = async () => {
    await Promise.all(
      functions.map(
        ({ child }) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.kill('SIGTERM');
            setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
          }),
      ),
    );
  };
  try {
    for (const workload of workloads) {
      const port = await freePort();
      const base = `http://127.0.0.1:${port}`;
      const env = { PATH: process.env.PATH ?? '', ...workload.env, ...options.env, PORT: String(port) };
      // Addresses an app is told about itself (download links, report links) point at this process.
      if ('JOBS_PUBLIC_URL' in env) env.JOBS_PUBLIC_URL = base;
      if ('PUBLIC_BASE_URL' in env) env.PUBLIC_BASE_URL = base;
      const child = spawn('node', workload.command.slice(1), { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      const keep = (chunk: Buffer) => {
        output = (output + chunk.toString()).slice(-20_000);
      };
      child.stdout!.on('data', keep);
      child.stderr!.on('data', keep);
      functions.push({ name: workload.name, bundle: workload.bundle, base, port, child, output: () => output });
      await waitForPort(port, child, { describe: () => output.slice(-2000) });
    }
    for (const fn of functions) await waitHealthy(fn);
  } catch (error) {
    await stop();
    throw error;
  }
  return { functions, adminKey: key, db, stop };
}

async function waitHealthy(fn: RunningFunction): Promise<void> {
  for (let i = 0; i < 600; i += 1) {
    const status = await fetch(`${fn.base}/healthz`).then(
      (r) => r.status,
      () => 0,
    );
    if (status === 200) return;
    if (fn.child.exitCode !== null) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${fn.name} is not healthy: ${fn.output().slice(-2000)}`);
}
