import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BuiltImage, buildImage, engine, runArgs, runOnce } from '../../support/image.js';
import { freePort } from '../../support/ports.js';
import { uniqueName } from '../../support/services.js';
import { type SinkServer, startSinkServer } from '../../support/sink-server.js';
import { manifestWorkloads, testValues, type Workload } from '../../support/workloads.js';
import { components } from '../../unit/knative/lib/components.js';

// The Dockerfile built (scripts/image/build.sh: docker, podman or buildah; the base made from Debian packages
// where no registry answers) and every workload of knative/ run from it as its manifest declares: the bridge
// (StatefulSet) and each function (Knative Service). Each must become ready on its manifest's port under
// its manifest's security context, answer /healthz against the test services, and exit cleanly on SIGTERM
// within its termination grace period. Every one, not a sample: a package that the bundles leave to
// node_modules and the image lacks shows only when that deployable runs from the image. A first run builds
// the image (minutes); later runs reuse it while the inputs are unchanged.

const db = uniqueName('image')
  .replace(/[^A-Za-z0-9_-]/g, '_')
  .slice(0, 60);
const landed = new Set(components().map((c) => c.name));
const wanted = manifestWorkloads(() => undefined)
  .filter((w) => landed.has(w.bundle))
  .map((w) => w.name);
const containers: string[] = [];
let built: BuiltImage;
let sink: SinkServer;
let workloads: Workload[];

beforeAll(async () => {
  built = await buildImage();
  sink = await startSinkServer();
  workloads = manifestWorkloads(testValues(sink.url, db)).filter((w) => wanted.includes(w.name));
}, 1_200_000);

afterAll(async () => {
  for (const name of containers) await engine(built, ['rm', '--force', name]).catch(() => undefined);
  await sink?.close();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function state(name: string): Promise<{ running: boolean; exitCode: number }> {
  const out = await engine(built, ['inspect', '--format', '{{.State.Running}} {{.State.ExitCode}}', name]);
  const [running, exitCode] = out.trim().split(' ');
  return { running: running === 'true', exitCode: Number(exitCode) };
}

/** The readiness probe of the manifest, against the published port: TCP connect or an HTTP 2xx. */
async function probe(workload: Workload, port: number): Promise<boolean> {
  const path = workload.probe.kind === 'http' ? workload.probe.path : '/';
  return fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5_000) }).then(
    (response) => workload.probe.kind === 'tcp' || (response.status >= 200 && response.status < 400),
    () => false,
  );
}

describe('the image', () => {
  it('has exactly the deployables, runs as a non-root user by default, and kept no build secret', async () => {
    const config = JSON.parse(await engine(built, ['image', 'inspect', '--format', '{{json .Config}}', built.image]));
    expect(config.User).toBe('1000:1000');
    expect((config.Env as string[]).filter((e) => /CA_CERTS|npm-ca/i.test(e))).toEqual([]);
    const listing = await runOnce(built, 'sh', [
      '-c',
      'ls /app/dist; test ! -e /app/node_modules && echo no-node-modules; test ! -e /run/secrets/npm-ca && echo no-secret',
    ]);
    const lines = listing.trim().split('\n');
    const bundles = lines.flatMap((l) => /^([a-z-]+)\.js$/.exec(l)?.[1] ?? []);
    expect(bundles.sort()).toEqual(
      components()
        .map((c) => c.name)
        .sort(),
    );
    // The bundles hold every dependency, the functions framework too (scripts/build.mjs).
    expect(lines).toContain('no-node-modules');
    expect(lines.at(-1)).toBe('no-secret');
  }, 120_000);

  it("has each deployable's code cache, which the image's Node accepts under the manifest's Node arguments", async () => {
    // The build stage trains the caches with the image's own Node; V8 ignores a cache from another Node or flags,
    // and a deployable would still start, only slower: this is where that would show.
    const check = `const { Script } = require('node:vm'); const fs = require('node:fs'); const out = {};
      for (const [name, nodeArgs] of JSON.parse(process.argv[1])) {
        const f = '/app/dist/' + name + '.bundle.cjs';
        const r = require('node:child_process').spawnSync(process.execPath, [...nodeArgs, '-e',
          "for (const a of process.execArgv) { const f = /^--([a-z-]+-space-size)=\\\\d+$/.exec(a)?.[1]; if (f) require('node:v8').setFlagsFromString('--' + f + '=0'); } const s = new (require('node:vm').Script)(require('node:fs').readFileSync(process.argv[1], 'utf8'), { cachedData: require('node:fs').readFileSync(process.argv[1] + '.cache') }); process.stdout.write(String(!s.cachedDataRejected))", f],
          { encoding: 'utf8' });
        out[name] = r.stdout + r.stderr;
      }
      console.log(JSON.stringify(out));`;
    // (The console is an ES module bundle without a code cache: scripts/build.mjs.)
    const deployables = manifestWorkloads(() => undefined).filter(
      (w) => landed.has(w.bundle) && w.bundle !== 'console',
    );
    // `node <heap flags> dist/<name>.js`: the words between node and the bundle.
    const options = deployables.map((w) => [w.bundle, w.command.slice(1, -1)]);
    const accepted = JSON.parse(await runOnce(built, 'node', ['-e', check, JSON.stringify(options)]));
    expect(accepted).toEqual(Object.fromEntries(deployables.map((w) => [w.bundle, 'true'])));
  }, 120_000);

  for (const name of wanted) {
    it(`runs ${name} under its manifest: ready on its port, /healthz ok, a clean exit on SIGTERM`, async () => {
      const workload = workloads.find((w) => w.name === name)!;
      expect(workload, `${name} in knative/`).toBeDefined();
      // What the issue requires of every workload, read from the manifest (the run below applies it).
      expect(workload.securityContext).toMatchObject({
        runAsNonRoot: true,
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ['ALL'] },
      });
      expect(workload.securityContext.runAsUser).toBeGreaterThan(0);

      const container = uniqueName(`kiot-${name}`);
      const port = await freePort();
      containers.push(container);
      await engine(built, runArgs(built, workload, container, port));

      let ready = false;
      for (let i = 0; i < 600 && !ready; i += 1) {
        ready = await probe(workload, port);
        if (!ready) {
          if (!(await state(container)).running) break;
          await sleep(100);
        }
      }
      const logs = async () => (await engine(built, ['logs', container]).catch((e: Error) => e.message)).slice(-3000);
      expect(ready, `not ready; logs:\n${await logs()}`).toBe(true);

      // A TCP probe passes once the port is open; the store connections may come up a moment later.
      let health: { status: string; checks: Record<string, string> } | undefined;
      let healthStatus = 0;
      for (const until = Date.now() + 90_000; healthStatus !== 200 && Date.now() < until; ) {
        // A check that hangs (a store not answering) is asked again, not waited for until the test times out.
        const response = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(5_000) }).catch(
          () => undefined,
        );
        healthStatus = response?.status ?? 0;
        health = response ? ((await response.json()) as typeof health) : health;
        if (healthStatus !== 200) await sleep(100);
      }
      expect(healthStatus, JSON.stringify(health)).toBe(200);
      expect(health!.status).toBe('ok');
      expect(Object.keys(health!.checks).length).toBeGreaterThan(0);

      // The process as the kernel sees it: the manifest's user and group, no capabilities, no_new_privs;
      // and nothing on the root filesystem (nor /tmp) is writable.
      const status = await engine(built, ['exec', container, 'cat', '/proc/1/status']);
      const field = (key: string) => new RegExp(`^${key}:\\s*(.*)$`, 'm').exec(status)?.[1]?.split(/\s+/);
      const { runAsUser, runAsGroup } = workload.securityContext;
      expect(field('Uid')).toEqual(Array(4).fill(String(runAsUser)));
      expect(field('Gid')).toEqual(Array(4).fill(String(runAsGroup)));
      for (const set of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb'])
        expect(field(set), set).toEqual(['0'.repeat(16)]);
      expect(field('NoNewPrivs')).toEqual(['1']);
      const writes = await engine(built, [
        'exec',
        container,
        'node',
        '-e',
        "for (const p of ['/app/x', '/tmp/x', '/home/node/x']) " +
          "try { require('fs').writeFileSync(p, ''); console.log(p, 'written') } catch (e) { console.log(p, e.code) }",
      ]);
      expect(writes.trim().split('\n')).toEqual(['/app/x EROFS', '/tmp/x EROFS', '/home/node/x EROFS']);

      // Kubernetes' stop: SIGTERM, then SIGKILL after the grace period. Exit status 0 means the process
      // finished its own shutdown before that (a SIGKILL shows as 137).
      await engine(built, ['stop', '--time', String(workload.graceSeconds), container], {
        timeoutMs: (workload.graceSeconds + 30) * 1000,
      });
      const stopped = await state(container);
      expect(stopped.running).toBe(false);
      expect(stopped.exitCode, await logs()).toBe(0);
      expect(await logs()).toMatch(/"signal":"SIGTERM"/);
    }, 180_000);
  }
});
