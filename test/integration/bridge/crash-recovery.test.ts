import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MQTT_URL, uniqueName } from '../../support/services.js';
import { type SinkServer, startSinkServer } from '../../support/sink-server.js';
import { answering, connectDevice, json, testEnv, waitUntil } from './helpers.js';

/** The bundled bridge as production runs it: `node dist/bridge.js`, configured by env only. */
function spawnBridge(env: Record<string, string>): { child: ChildProcess; url: Promise<string> } {
  const child = spawn(process.execPath, ['dist/bridge.js'], {
    env: { ...process.env, ...env, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const url = new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const port = /"port":(\d+).*"bridge listening"/.exec(output)?.[1];
      if (port) resolve(`http://127.0.0.1:${port}`);
    });
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', (code) => reject(new Error(`bridge exited with ${code}: ${output.slice(-2000)}`)));
  });
  return { child, url };
}

const healthy = async (url: string) => (await fetch(`${url}/healthz`).catch(() => undefined))?.status === 200;
const exited = (child: ChildProcess) =>
  new Promise<void>((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', () => resolve())));

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
    const ours = () => sink.received.filter((r) => r.event?.subject === id);

    // Prepare: the sink is down; the bridge receives and retries.
    // (Only ours: the shared broker carries other tests' devices too, and their events are accepted.)
    answers.policy = (request) => ({ status: request.event?.subject === id ? 503 : 202 });
    const first = spawnBridge(env);
    running = first.child;
    const firstUrl = await first.url;
    await waitUntil(() => healthy(firstUrl), 'the first bridge to be ready');
    for (let n = 0; n < 20; n += 1) {
      await device.publishAsync(`devices/${id}/telemetry`, json({ metrics: { n } }), { qos: 1 });
    }
    // Every session holds one of ours and keeps retrying it: it has not been acknowledged.
    await sink.waitFor(() => new Set(ours().map((r) => r.event!.id)).size >= 3 && ours().length >= 9);
    const seenBeforeCrash = new Map(
      ours().map((r) => [(r.event!.data as { metrics: { n: number } }).metrics.n, r.event!.id]),
    );

    // Act: kill it; more messages arrive while it is gone; then the sink recovers and the bridge returns.
    first.child.kill('SIGKILL');
    await exited(first.child);
    for (let n = 20; n < 30; n += 1) {
      await device.publishAsync(`devices/${id}/telemetry`, json({ metrics: { n } }), { qos: 1 });
    }
    answers.policy = () => ({ status: 202 });
    const second = spawnBridge(env);
    running = second.child;
    const accepted = () => ours().filter((r) => answers.accepted.includes(r.event!.id));
    await sink.waitFor(
      () => new Set(accepted().map((r) => (r.event!.data as { metrics: { n: number } }).metrics.n)).size === 30,
      30_000,
    );

    // Assess: all 30 delivered; those seen before the crash came again under the same id.
    const deliveredIds = new Map(
      accepted().map((r) => [(r.event!.data as { metrics: { n: number } }).metrics.n, r.event!.id]),
    );
    expect([...deliveredIds.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: 30 }, (_, n) => n));
    for (const [n, eventId] of seenBeforeCrash) expect(deliveredIds.get(n)).toBe(eventId);

    // And a graceful stop drains and exits 0.
    second.child.kill('SIGTERM');
    await exited(second.child);
    expect(second.child.exitCode).toBe(0);
    running = undefined;
  }, 90_000);
});
