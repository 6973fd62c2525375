import { type ChildProcess, spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../support/ports.js';
import { uniqueName } from '../../support/services.js';
import { type SinkServer, startSinkServer } from '../../support/sink-server.js';
import { manifestWorkloads, testValues } from '../../support/workloads.js';
import { buildBundles } from '../../unit/knative/lib/build.js';
import { components } from '../../unit/knative/lib/components.js';
import { ROOT } from '../../unit/knative/lib/manifests.js';

// Each workload of knative/ started as the cluster would start it: its command (`node dist/<name>.js`) in an
// image-like directory (dist/ and a package.json trimmed as the Dockerfile trims it), with the environment
// its manifest declares, ConfigMap values resolved and Secret keys filled from the test services. It must
// pass its readiness probe (TCP for the functions, GET /healthz for the bridge) and answer /healthz.
// (test/integration/image runs two of them from the built image itself.) A function split by audience runs as its
// manifests say: the public app Service refuses a CloudEvent (403 events_not_accepted) and serves its document; the
// cluster-local `<name>-events` one serves no app route (404).
const landed = new Set(components().map((c) => c.name));
const db = uniqueName('ks')
  .replace(/[^A-Za-z0-9_-]/g, '_')
  .slice(0, 60);
const workloadsOf = (sink: string) =>
  manifestWorkloads((name, key) => (name === 'LOG_LEVEL' ? 'warn' : testValues(sink, db)(name, key)));

const tcpOpen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });

describe('workloads start from their manifests', () => {
  let image: string;
  let sink: SinkServer;
  const running: ChildProcess[] = [];

  beforeAll(async () => {
    buildBundles();
    // An image-like layout: dist/ copied (a rebuild elsewhere cannot change it under us), package.json trimmed.
    image = mkdtempSync(join(tmpdir(), 'kiot-image-'));
    cpSync(join(ROOT, 'dist'), join(image, 'dist'), { recursive: true });
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    writeFileSync(
      join(image, 'package.json'),
      JSON.stringify({
        name: pkg.name,
        type: pkg.type,
        dependencies: { '@google-cloud/functions-framework': pkg.dependencies['@google-cloud/functions-framework'] },
      }),
    );
    symlinkSync(join(ROOT, 'node_modules'), join(image, 'node_modules'));
    sink = await startSinkServer();
  }, 120_000);

  afterAll(async () => {
    for (const child of running) if (child.exitCode === null) child.kill('SIGKILL');
    await sink?.close();
    if (image) rmSync(image, { recursive: true, force: true });
  });

  /** What a role answers: an app Service to a CloudEvent and to its document, an events Service to the document. */
  async function roleAnswers(port: number, role: string | undefined): Promise<Record<string, unknown>> {
    const base = `http://127.0.0.1:${port}`;
    const document = (await fetch(`${base}/openapi.json`)).status;
    if (role === 'events') return { role, document };
    if (role !== 'app') return {};
    const event = await fetch(base, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'ce-specversion': '1.0',
        'ce-id': uniqueName('forged'),
        'ce-source': '/forger',
        'ce-type': 'io.kiot.telemetry.received',
        'ce-subject': 'any-device',
      },
      body: JSON.stringify({ ts: Date.now(), metrics: { temp: 1 } }),
    });
    const code = ((await event.json()) as { error?: { code?: string } }).error?.code;
    return { role, document, event: event.status, code };
  }

  it('every workload passes its readiness probe and answers /healthz', async () => {
    const results: { name: string; ready: boolean; health?: number; output: string }[] = [];
    const roles: Record<string, unknown>[] = [];
    for (const workload of workloadsOf(sink.url).filter((w) => landed.has(w.bundle))) {
      const port = await freePort();
      const child = spawn('node', [`dist/${workload.bundle}.js`], {
        cwd: image,
        env: { PATH: process.env.PATH, ...workload.env, PORT: String(port) },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      running.push(child);
      let output = '';
      child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
      let ready = false;
      let health: number | undefined;
      for (let i = 0; i < 600 && child.exitCode === null && !ready; i += 1) {
        if (workload.probe.kind === 'tcp') ready = await tcpOpen(port);
        else
          ready = await fetch(`http://127.0.0.1:${port}${workload.probe.path}`).then(
            (r) => r.status === 200,
            () => false,
          );
        if (!ready) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      if (ready) {
        for (let i = 0; i < 100 && health !== 200; i += 1) {
          health = await fetch(`http://127.0.0.1:${port}/healthz`).then(
            (r) => r.status,
            () => undefined,
          );
          if (health !== 200) await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
      const role = workload.env.FUNCTION_ROLE;
      if (health === 200 && role) roles.push({ name: workload.name, ...(await roleAnswers(port, role)) });
      child.kill('SIGTERM');
      await new Promise((resolve) => (child.exitCode !== null ? resolve(undefined) : child.once('exit', resolve)));
      results.push({ name: workload.name, ready, health, output: ready && health === 200 ? '' : output.slice(-2000) });
    }
    expect(results.length).toBeGreaterThanOrEqual(1);
    expect(results.filter((r) => !r.ready || r.health !== 200)).toEqual([]);
    const split = ['command-dispatch', 'device-registry', 'jobs', 'report-generation', 'telemetry-ingest'];
    expect(roles.sort((a, b) => String(a.name).localeCompare(String(b.name)))).toEqual(
      split
        .flatMap((name) => [
          { name, role: 'app', document: 200, event: 403, code: 'events_not_accepted' },
          { name: `${name}-events`, role: 'events', document: 404 },
        ])
        .sort((a, b) => a.name.localeCompare(b.name)),
    );
  }, 180_000);
});
