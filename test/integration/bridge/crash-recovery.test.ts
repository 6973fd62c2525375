import { type ChildProcess, execFileSync } from 'node:child_process';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MQTT_URL, uniqueName } from '../../support/services.js';
import { type SinkServer, startSinkServer } from '../../support/sink-server.js';
import {
  answering,
  carries,
  connectDevice,
  exited,
  forwardedIn,
  healthy,
  json,
  spawnBridge,
  testEnv,
  waitUntil,
} from './helpers.js';

// The bridge dies (SIGKILL) while the sink is down and comes back with the same client id: nothing is lost,
// and what it was retrying before the crash arrives under the same event id.
describe('bridge: crash and restart as a child process', () => {
  let sink: SinkServer;
  let deadLetter: SinkServer;
  let device: MqttClient;
  let running: ChildProcess | undefined;

  beforeAll(async () => {
    execFileSync(process.execPath, ['scripts/build.mjs'], { stdio: 'pipe' });
    sink = await startSinkServer();
    deadLetter = await startSinkServer();
    device = await connectDevice(MQTT_URL, { protocolVersion: 4 });
  }, 120_000);

  afterAll(async () => {
    running?.kill('SIGKILL');
    await device?.endAsync();
    await sink?.close();
    await deadLetter?.close();
  });

  it('loses nothing across a SIGKILL and a restart with the same client id', async () => {
    const answers = answering(sink);
    const id = uniqueName('dev');
    const env = testEnv({ sink, deadLetter, env: { BRIDGE_SESSIONS: '3', RETRY_MAX_MS: '100' } });
    const ours = () => forwardedIn(sink.received).filter((m) => m.subject === id);

    // Prepare: the sink is down; the bridge receives and retries.
    // (Only ours: the shared broker carries other tests' devices too, and their events are accepted.)
    answers.policy = (request) => ({ status: carries(request, id) ? 503 : 202 });
    const first = spawnBridge(env);
    running = first.child;
    const firstUrl = await first.url;
    await waitUntil(() => healthy(firstUrl), 'the first bridge to be ready');
    for (let n = 0; n < 20; n += 1) {
      await device.publishAsync(`devices/${id}/telemetry`, json({ metrics: { n } }), { qos: 1 });
    }
    // Every session holds ours and keeps retrying them: they have not been acknowledged.
    await sink.waitFor(() => new Set(ours().map((m) => m.id)).size >= 3 && ours().length >= 9);
    const seenBeforeCrash = new Map(ours().map((m) => [(m.data as { metrics: { n: number } }).metrics.n, m.id]));

    // Act: kill it; more messages arrive while it is gone; then the sink recovers and the bridge returns.
    first.child.kill('SIGKILL');
    await exited(first.child);
    for (let n = 20; n < 30; n += 1) {
      await device.publishAsync(`devices/${id}/telemetry`, json({ metrics: { n } }), { qos: 1 });
    }
    answers.policy = () => ({ status: 202 });
    const second = spawnBridge(env);
    running = second.child;
    const accepted = () => ours().filter((m) => answers.accepted.includes(m.id));
    await sink.waitFor(
      () => new Set(accepted().map((m) => (m.data as { metrics: { n: number } }).metrics.n)).size === 30,
      30_000,
    );

    // Assess: all 30 delivered; those seen before the crash came again under the same id.
    const deliveredIds = new Map(accepted().map((m) => [(m.data as { metrics: { n: number } }).metrics.n, m.id]));
    expect([...deliveredIds.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: 30 }, (_, n) => n));
    for (const [n, eventId] of seenBeforeCrash) expect(deliveredIds.get(n)).toBe(eventId);

    // And a graceful stop drains and exits 0.
    second.child.kill('SIGTERM');
    await exited(second.child);
    expect(second.child.exitCode).toBe(0);
    running = undefined;
  }, 90_000);
});
