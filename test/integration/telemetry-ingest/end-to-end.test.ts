import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BridgeHandle, startBridge } from '../../../bridge/bridge.js';
import { loadBridgeConfig } from '../../../bridge/config.js';
import { type RunningRouter, routerConfigSchema, startRouter } from '../../../scripts/router/index.js';
import { loadConfig } from '../../../shared/config.js';
import { createLogger } from '../../../shared/logger.js';
import { type PrivateMosquitto, startMosquitto } from '../../support/mosquitto.js';
import { uniqueName } from '../../support/services.js';
import { type Harness, startHarness, storedSamples } from './harness.js';
import { freePort } from './private-services.js';

/** Polls a condition (not the clock). */
async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

// Device → Mosquitto → bridge → router (routing by knative/ Triggers) → telemetry-ingest → stores, and
// back: rejection notice → router → bridge → the device's errors topic. The bridge batches telemetry (its
// default), so a Mosquitto of this file's own keeps other tests' devices out of its batches.
describe('telemetry-ingest end to end', () => {
  let broker: PrivateMosquitto;
  let MQTT_URL: string;
  const prefix = uniqueName('e2e');
  const deadLetters = mkdtempSync(join(tmpdir(), 'kiot-e2e-'));
  let h: Harness;
  let router: RunningRouter;
  let bridge: BridgeHandle;
  let device: MqttClient;
  const deviceId = `${prefix}-d1`;
  const errors: unknown[] = [];

  beforeAll(async () => {
    broker = await startMosquitto({ persistence: false });
    MQTT_URL = broker.url;
    const [fnPort, bridgePort, routerPort] = [await freePort(), await freePort(), await freePort()];
    router = await startRouter(
      loadConfig(routerConfigSchema, {
        PORT: String(routerPort),
        KNATIVE_DIR: 'knative',
        ROUTER_SERVICES: `telemetry-ingest=http://127.0.0.1:${fnPort},mqtt-bridge=http://127.0.0.1:${bridgePort}`,
        ROUTER_DEAD_LETTER_FILE: join(deadLetters, 'dead-letters.jsonl'),
        LOG_LEVEL: 'silent',
      }),
    );
    const ingress = `${router.url}/kiot/default`;
    h = await startHarness({ K_SINK: ingress }, { port: fnPort });
    const bridgeConfig = loadBridgeConfig({
      MQTT_URL,
      K_SINK: ingress,
      DEAD_LETTER_SINK: h.sink.url,
      PORT: String(bridgePort),
      BRIDGE_CLIENT_ID: uniqueName('e2e-bridge'),
      BRIDGE_SHARE_GROUP: uniqueName('e2e-g'),
      BRIDGE_SESSIONS: '2',
      BRIDGE_SESSION_EXPIRY_S: '60',
      LOG_LEVEL: 'silent',
    });
    bridge = await startBridge(bridgeConfig, { logger: createLogger('bridge', 'silent') });
    await bridge.ready();
    await h.addDevice(deviceId);
    device = await mqtt.connectAsync(MQTT_URL, {
      protocolVersion: 5,
      clientId: deviceId,
      will: { topic: `devices/${deviceId}/status`, payload: Buffer.from('offline'), qos: 1, retain: true },
    });
    device.on('message', (topic, payload) => {
      if (topic === `devices/${deviceId}/errors`) errors.push(JSON.parse(payload.toString()));
    });
    await device.subscribeAsync(`devices/${deviceId}/errors`, { qos: 1 });
  }, 60_000);

  afterAll(async () => {
    device?.end(true);
    await bridge?.close();
    await router?.close({ drainTimeoutMs: 1_000 });
    await h?.close();
    await broker?.dispose();
    rmSync(deadLetters, { recursive: true, force: true });
  });

  it('stores a single message and a batch published over MQTT, once each', async () => {
    const ts = Date.now() - 10_000;
    await device.publishAsync(
      `devices/${deviceId}/telemetry`,
      JSON.stringify({ ts, metrics: { temp: 21.5 }, msgId: 'one' }),
      { qos: 1 },
    );
    const base = Date.now() - 5_000;
    const batch = [3, 1, 2].map((n) => ({ ts: base + n, metrics: { temp: n } }));
    await device.publishAsync(`devices/${deviceId}/telemetry`, JSON.stringify(batch), { qos: 1 });
    await until(async () => (await storedSamples(h, deviceId)).length >= 4, 'four samples stored');
    await router.idle();
    const stored = await storedSamples(h, deviceId);
    expect(stored).toHaveLength(4);
    expect(stored.filter((doc) => doc.msgId === 'one')).toEqual([
      expect.objectContaining({
        _id: `${deviceId}~one~${ts}`,
        eventId: `${deviceId}:one@${ts}`,
        metrics: { temp: 21.5 },
      }),
    ]);
    expect(stored.filter((doc) => doc.msgId === undefined).map((doc) => doc.metrics.temp)).toEqual([1, 2, 3]);
  });

  it('stores new data from a device whose msgId counter restarted after a reboot; a resend once', async () => {
    const rebootId = `${prefix}-reboot`;
    await h.addDevice(rebootId);
    const duplicates = async () =>
      Number(/kiot_telemetry_duplicates_total (\d+)/.exec(await (await h.get('/metrics')).text())?.[1] ?? 0);
    const publish = async (client: MqttClient, sample: object) =>
      client.publishAsync(`devices/${rebootId}/telemetry`, JSON.stringify(sample), { qos: 1 });
    const stored = async () => (await storedSamples(h, rebootId)).filter((doc) => doc.msgId === '1');

    const before = await mqtt.connectAsync(MQTT_URL, { protocolVersion: 5, clientId: rebootId });
    const t1 = Date.now() - 60_000;
    await publish(before, { msgId: '1', ts: t1, metrics: { temp: 1 } });
    await until(async () => (await stored()).length === 1, 'the first boot’s message 1');
    // Reboot: a new session (clean start) whose counter starts at 1 again, with its clock moved on.
    await before.endAsync();
    const after = await mqtt.connectAsync(MQTT_URL, { protocolVersion: 5, clientId: rebootId, clean: true });
    const t2 = Date.now() - 1_000;
    await publish(after, { msgId: '1', ts: t2, metrics: { temp: 2 } });
    await until(async () => (await stored()).length === 2, 'the second boot’s message 1');
    // The device resends the same message (its PUBACK was lost): the same msgId and ts, dropped.
    const seen = await duplicates();
    await publish(after, { msgId: '1', ts: t2, metrics: { temp: 2 } });
    await until(async () => (await duplicates()) > seen, 'the resend counted as a duplicate');
    expect((await stored()).map((doc) => doc.metrics.temp).sort()).toEqual([1, 2]);
    // Without ts a msgId names nothing: a restarted counter's message is stored, never swallowed.
    await publish(after, { msgId: '9', metrics: { temp: 3 } });
    await publish(after, { msgId: '9', metrics: { temp: 4 } });
    await until(
      async () => (await storedSamples(h, rebootId)).filter((doc) => doc.msgId === '9').length === 2,
      'both untimed messages',
    );
    await after.endAsync();
  });

  it('tells the device on its errors topic why a message was refused', async () => {
    await device.publishAsync(`devices/${deviceId}/telemetry`, JSON.stringify({ metrics: { temp: 'warm' } }), {
      qos: 1,
    });
    await until(() => errors.length > 0, 'a notice on the errors topic');
    expect(errors[0]).toMatchObject({
      code: 'invalid_payload',
      eventId: expect.any(String),
      details: [expect.objectContaining({ path: 'metrics.temp' })],
    });
  });

  it('merges state reported over MQTT into the shadow', async () => {
    await device.publishAsync(
      `devices/${deviceId}/state/reported`,
      JSON.stringify({ fw: '1.2.3', led: { on: true } }),
      { qos: 1 },
    );
    await until(
      async () => ((await (await h.get(`/devices/${deviceId}/state`)).json()) as any).shadow.version === 1,
      'the shadow at version 1',
    );
    const view = (await (await h.get(`/devices/${deviceId}/state`)).json()) as any;
    expect(view.shadow.reported).toEqual({ fw: '1.2.3', led: { on: true } });
  });

  it.each([
    ['a number JSON cannot carry back', '{"fw":1e999}', 'non_finite_number'],
    ['a prototype key', '{"__proto__":{"admin":true}}', 'prototype_key'],
    ['a constructor key', '{"led":{"constructor":{"prototype":{}}}}', 'prototype_key'],
    ['a lone surrogate', '{"fw":"\\ud800"}', 'invalid_unicode'],
  ])('refuses a state report with %s, tells the device, and changes nothing', async (_name, text, code) => {
    const state = async () => ((await (await h.get(`/devices/${deviceId}/state`)).json()) as any).shadow;
    const before = await state();
    const seen = errors.length;
    await device.publishAsync(`devices/${deviceId}/state/reported`, Buffer.from(text), { qos: 1 });
    await until(() => errors.length > seen, 'a notice on the errors topic');
    expect(errors[seen]).toMatchObject({ code, topic: `devices/${deviceId}/state/reported` });
    expect(await state()).toEqual(before);
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
  });

  it('tracks presence from the birth message and from the last will of a killed client', async () => {
    const presence = async () => ((await (await h.get(`/devices/${deviceId}/state`)).json()) as any).presence;
    await device.publishAsync(`devices/${deviceId}/status`, 'online', { qos: 1, retain: true });
    await until(async () => (await presence()).connectedAt !== null, 'the connect recorded');
    expect((await presence()).status).toBe('online');
    // No DISCONNECT packet: the socket just dies, so Mosquitto publishes the will ([MQTT-3.1.2-8]).
    device.stream.destroy();
    await until(async () => (await presence()).status === 'offline', 'offline from the last will');
    expect((await presence()).disconnectedAt).not.toBeNull();
    // Clear the retained status so no later subscriber sees this test device.
    const cleaner = await mqtt.connectAsync(MQTT_URL, { protocolVersion: 5 });
    await cleaner.publishAsync(`devices/${deviceId}/status`, '', { qos: 1, retain: true });
    await cleaner.endAsync();
  });
});
