import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type IsolatedStack, processesIn, startIsolatedStack, waitUntil } from '../../support/isolated-stack.js';
import { ROOT } from '../../unit/knative/lib/manifests.js';
import { listeningPorts, type PortProbe, PROBE_SCRIPT } from './unauthenticated-probe.js';

// `npm start` as a user runs it — services, router, bridge, functions, simulated fleet — in a network
// namespace of its own (its dev ports never meet anything else on the machine) and in a copy of the
// repository (its own dist/ and .kiot/dev/). The bridge and telemetry-ingest die under it; both come back,
// the stored count grows again and every sample the devices sent before, during and after is stored.
describe('npm start: a supervised stack', () => {
  let stack: IsolatedStack;

  beforeAll(async () => {
    stack = await startIsolatedStack({
      root: ROOT,
      prefix: 'kiot-npm-start-',
      env: {
        SIM_DEVICES: '3',
        SIM_RATE: '4',
        SIM_PROGRESS_EVERY: '1',
        KIOT_REPORT_AFTER: '3600',
        KIOT_EXAMPLE_ROLLOUT: '0',
      },
      ready: /^simulator: 3\/3 online · sent [1-9]/m,
    });
  }, 1_200_000);

  afterAll(async () => {
    await stack?.stop();
  }, 120_000);

  const lines = () => stack.output().split('\n');
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
    const result = stack.runInside(process.execPath, ['--input-type=module', '-e', script]);
    if (result.status !== 0) throw new Error(`reading the stack's MongoDB failed: ${result.stderr}`);
    return JSON.parse(result.stdout) as { count: number; perDevice: Record<string, number[]> };
  };
  const componentPid = (name: string) => {
    const pids = processesIn(stack.dir, `dist/${name}.js`);
    expect(pids, `one ${name} process`).toHaveLength(1);
    return pids[0]!;
  };

  it('no listening port takes an unauthenticated CloudEvent or app request (an MQTT connect without credentials neither)', () => {
    const ss = stack.runInside('ss', ['-ltnH']);
    expect(ss.status, ss.stderr).toBe(0);
    const ports = listeningPorts(ss.stdout);
    const run = stack.runInside(
      process.execPath,
      ['--input-type=module', '-e', PROBE_SCRIPT, JSON.stringify(ports)],
      240_000,
    );
    expect(run.status, run.stderr).toBe(0);
    const probes = JSON.parse(run.stdout) as PortProbe[];
    const report = JSON.stringify(probes);
    // Every answer to a forged event is a refusal: no token (401), not for this receiver (403), or nothing served
    // there (404/405); never a 2xx, never a 400 that would mean the event was read before its sender was checked.
    for (const probe of probes)
      for (const attempt of probe.events)
        expect([401, 403, 404, 405, 'none'], `port ${probe.port} ${attempt.mode} ${attempt.path}`).toContain(
          attempt.status,
        );
    const refusedAtRoot = probes.filter((p) => p.events.some((e) => e.path === '/' && e.status === 401));
    expect(refusedAtRoot.length, report).toBeGreaterThanOrEqual(7); // the bridge and the six event receivers
    expect(probes.some((p) => p.events.some((e) => e.path === '/kiot/default' && e.status === 401))).toBe(true);
    // Every documented operation that needs a credential answers 401 without one; what is public only reads.
    const documented = probes.filter((p) => p.app.length > 0);
    expect(documented.length, report).toBeGreaterThanOrEqual(7);
    for (const probe of documented)
      for (const op of probe.app) expect(op.status, `port ${probe.port} ${op.method} ${op.path}`).toBe(401);
    for (const op of probes.flatMap((p) => p.publicOperations)) expect(op).toMatch(/^GET /);
    // The MQTT broker refuses an anonymous session (CONNACK 5, not authorized).
    const mqtt = probes.filter((p) => p.mqtt !== 'none');
    expect(mqtt.length, report).toBeGreaterThanOrEqual(1);
    for (const probe of mqtt) expect(probe.mqtt, `port ${probe.port}`).not.toBe(0);
  }, 300_000);

  it('shows the samples stored per second in the progress line, the bridge batching telemetry', async () => {
    await waitUntil(
      () =>
        /^simulator: 3\/3 online · sent \d+ \([0-9.]+\/s\) · stored [1-9]\d* samples \([0-9.]+\/s\)/m.test(
          stack.output(),
        ),
      'a stored count in the progress line',
    );
  }, 120_000);

  it('names a component that stops answering in the progress line', async () => {
    const pid = componentPid('telemetry-ingest');
    process.kill(pid, 'SIGSTOP');
    const mark = stack.output().length;
    try {
      await waitUntil(
        () => /^simulator: .* · DOWN: telemetry-ingest$/m.test(stack.output().slice(mark)),
        'DOWN in the progress line',
      );
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    const resumed = stack.output().length;
    await waitUntil(
      () => /^simulator: \d+\/3 online · sent \d+ .*errors received \d+$/m.test(stack.output().slice(resumed)),
      'all up',
    );
  }, 120_000);

  const routerLog = () => readFileSync(join(stack.dir, '.kiot', 'dev', 'logs', 'router.log'), 'utf8');

  it('starts the functions before the router delivers to them: no delivery met a closed port', () => {
    // The router holds each delivery until its function answers /healthz (ROUTER_SERVICE_HOLD_MS), and the
    // bridge starts last; so far nothing has died, so no attempt may have been refused.
    expect(routerLog()).toContain('router listening');
    expect(routerLog()).not.toMatch(/ECONNREFUSED/);
  });

  it('restarts the bridge and telemetry-ingest when they are killed, says so, and nothing is lost', async () => {
    const before = stored().count;
    expect(before).toBeGreaterThan(0);
    const bridge = componentPid('bridge');
    const ingest = componentPid('telemetry-ingest');
    process.kill(bridge, 'SIGKILL');
    process.kill(ingest, 'SIGKILL');
    await waitUntil(
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
    await waitUntil(() => stored().count > afterRestarts, 'the stored count growing again', 120_000);
    // Nothing lost: every sample up to the newest one stored now (sent after the restarts) gets stored, each once.
    const newest = Object.fromEntries(Object.entries(stored().perDevice).map(([id, seqs]) => [id, Math.max(...seqs)]));
    expect(Object.keys(newest)).toHaveLength(3);
    await waitUntil(
      () => {
        const now = stored().perDevice;
        return Object.entries(newest).every(([id, max]) => new Set(now[id]!.filter((seq) => seq <= max)).size === max);
      },
      'every sample up to the newest stored',
      180_000,
    );
    for (const seqs of Object.values(stored().perDevice)) expect(new Set(seqs).size).toBe(seqs.length);
    expect(stack.output()).not.toMatch(/GIVING UP/);
  }, 400_000);

  it('stops in order on Ctrl-C: nothing restarted, the services stopped', async () => {
    const mark = stack.output().length;
    process.kill(-stack.pid, 'SIGINT');
    // stack.sh exits 0; npm, Ctrl-C'd too, then ends itself with SIGINT (as it does in a terminal).
    const { code, signal } = await stack.exited;
    const tail = stack.output().slice(mark);
    expect(code === 0 || signal === 'SIGINT', `${code} ${signal}: ${tail}`).toBe(true);
    expect(tail).toContain('stack: stopping the stack…');
    expect(tail).toMatch(/simulator: stopped after \d+ messages/);
    expect(tail).toContain('[services:dev] stopped mongo');
    expect(tail).not.toMatch(/restarting it in/);
    expect(processesIn(stack.dir)).toEqual([]);
    // Many deliveries waited on the router's one stop signal during the kills: no leak warning.
    expect(routerLog()).not.toMatch(/MaxListenersExceeded/);
    expect(stack.output()).not.toMatch(/No such file or directory/);
  }, 120_000);
});
