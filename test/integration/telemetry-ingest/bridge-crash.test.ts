import type { ChildProcess } from 'node:child_process';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PrivateMosquitto, startMosquitto } from '../../support/mosquitto.js';
import { uniqueName } from '../../support/services.js';
import { buildBundles } from '../../unit/knative/lib/build.js';
import { connectDevice, exited, healthy, spawnBridge, waitUntil } from '../bridge/helpers.js';
import { type Harness, startHarness, storedSamples } from './harness.js';

const BATCH = 'io.kiot.telemetry.batch';

// The bundled bridge (`node dist/bridge.js`, batching on) is SIGKILLed with a batch open and then with a batch in
// flight at the real telemetry-ingest; restarted under the same client id, every message is stored exactly once:
// the broker sends again what was never acknowledged, and the deterministic event ids dedup what had arrived.
describe('a bridge killed with telemetry batches open or in flight', () => {
  let broker: PrivateMosquitto;
  let h: Harness;
  let device: MqttClient;
  let running: ChildProcess | undefined;
  /** While set, batch deliveries wait here: a batch held in flight. */
  let hold: { arrived: () => void; released: Promise<void> } | undefined;

  beforeAll(async () => {
    // Under the build lock: another file rebuilding dist/ at the same moment would tear the bundles and maps.
    buildBundles();
    broker = await startMosquitto({ persistence: false });
    h = await startHarness(
      {},
      {
        beforeEvent: async (headers) => {
          if (hold && headers['ce-type'] === BATCH) {
            hold.arrived();
            await hold.released;
          }
        },
      },
    );
    device = await connectDevice(broker.url);
  }, 120_000);

  afterAll(async () => {
    running?.kill('SIGKILL');
    await device?.endAsync();
    await h?.close();
    await broker?.dispose();
  });

  function startBridge(clientId: string, env: Record<string, string>) {
    const bridge = spawnBridge({
      MQTT_URL: broker.url,
      K_SINK: h.base,
      DEAD_LETTER_SINK: h.sink.url,
      PORT: '0',
      BRIDGE_CLIENT_ID: clientId,
      BRIDGE_SHARE_GROUP: clientId,
      BRIDGE_SESSIONS: '2',
      BRIDGE_SESSION_EXPIRY_S: '300',
      RETRY_BASE_MS: '5',
      RETRY_MAX_MS: '100',
      ...env,
    });
    running = bridge.child;
    return bridge;
  }

  const inFlight = async (url: string) =>
    Number(/kiot_bridge_in_flight_messages (\d+)/.exec(await (await fetch(`${url}/metrics`)).text())?.[1] ?? 0);

  async function publishAll(deviceId: string, count: number) {
    const ts = Date.now();
    for (let n = 0; n < count; n += 1) {
      await device.publishAsync(
        `devices/${deviceId}/telemetry`,
        JSON.stringify({ msgId: `m${n}`, ts, metrics: { n } }),
        {
          qos: 1,
        },
      );
    }
  }

  async function expectStoredOnce(deviceId: string, count: number) {
    await waitUntil(async () => (await storedSamples(h, deviceId)).length >= count, `${count} samples stored`, 30_000);
    const stored = await storedSamples(h, deviceId);
    expect(stored).toHaveLength(count);
    expect(new Set(stored.map((doc) => doc.msgId))).toEqual(new Set(Array.from({ length: count }, (_, n) => `m${n}`)));
  }

  it('loses nothing and stores nothing twice when killed with a batch open', async () => {
    const deviceId = uniqueName('open');
    const clientId = uniqueName('crash-open');
    await h.addDevice(deviceId);
    // A linger far beyond the test: the batch stays open until the kill.
    const first = startBridge(clientId, { BATCH_MAX_COUNT: '1000', BATCH_LINGER_MS: '60000' });
    const url = await first.url;
    await waitUntil(() => healthy(url), 'the bridge to be ready');
    await publishAll(deviceId, 20);
    await waitUntil(async () => (await inFlight(url)) === 20, 'all 20 in the open batch');
    first.child.kill('SIGKILL');
    await exited(first.child);
    expect(await storedSamples(h, deviceId)).toHaveLength(0);

    const second = startBridge(clientId, { BATCH_MAX_COUNT: '1000', BATCH_LINGER_MS: '20' });
    await expectStoredOnce(deviceId, 20);
    second.child.kill('SIGTERM');
    await exited(second.child);
  }, 90_000);

  it('loses nothing and stores nothing twice when killed with a batch in flight', async () => {
    const deviceId = uniqueName('flight');
    const clientId = uniqueName('crash-flight');
    await h.addDevice(deviceId);
    let release = () => {};
    let arrived = () => {};
    const atFunction = new Promise<void>((resolve) => (arrived = resolve));
    hold = { arrived, released: new Promise<void>((resolve) => (release = resolve)) };
    const first = startBridge(clientId, { BATCH_MAX_COUNT: '1000', BATCH_LINGER_MS: '50' });
    const url = await first.url;
    await waitUntil(() => healthy(url), 'the bridge to be ready');
    await publishAll(deviceId, 20);
    await atFunction;
    // The batch is at the function, unanswered: the bridge dies, then the function stores what it holds.
    first.child.kill('SIGKILL');
    await exited(first.child);
    hold = undefined;
    release();

    // The broker sends them all again (none was acknowledged); once the new bridge has settled them, each is
    // stored once, whichever delivery stored it (the held one, or the redelivery if the held one failed).
    const second = startBridge(clientId, { BATCH_MAX_COUNT: '1000', BATCH_LINGER_MS: '20' });
    const url2 = await second.url;
    const counter = async (name: string) =>
      Number(
        new RegExp(`${name}(?:\\{[^}]*\\})? (\\d+)`).exec(await (await fetch(`${url2}/metrics`)).text())?.[1] ?? 0,
      );
    await waitUntil(
      async () =>
        (await counter('kiot_bridge_messages_received_total')) >= 20 &&
        (await counter('kiot_bridge_in_flight_messages')) === 0,
      'the redelivered messages settled',
      30_000,
    );
    await expectStoredOnce(deviceId, 20);
    second.child.kill('SIGTERM');
    await exited(second.child);
  }, 90_000);
});
