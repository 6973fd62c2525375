import { CloudEvent, MQTT } from 'cloudevents';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BridgeHandle } from '../../../bridge/bridge.js';
import { brokerSource } from '../../../bridge/config.js';
import { MQTT_URL, uniqueName } from '../../support/services.js';
import { type SinkServer, startSinkServer } from '../../support/sink-server.js';
import { collect, connectDevice, json, startTestBridge } from './helpers.js';

// MQTT → CloudEvents against the real Mosquitto and a real HTTP sink.
describe('bridge: device messages become CloudEvents', () => {
  let sink: SinkServer;
  let deadLetter: SinkServer;
  let bridge: BridgeHandle;
  let v311: MqttClient;
  let v5: MqttClient;
  const source = brokerSource(MQTT_URL);

  beforeAll(async () => {
    sink = await startSinkServer();
    deadLetter = await startSinkServer();
    // One event per message (BATCH_MAX_COUNT=1): the single-event format; batching.test.ts has the batches.
    ({ bridge } = await startTestBridge({ sink, deadLetter, env: { BATCH_MAX_COUNT: '1' } }));
    v311 = await connectDevice(MQTT_URL, { protocolVersion: 4 });
    v5 = await connectDevice(MQTT_URL, { protocolVersion: 5 });
  });

  afterAll(async () => {
    await v311?.endAsync();
    await v5?.endAsync();
    await bridge?.close();
    await sink?.close();
    await deadLetter?.close();
  });

  const withSubject = (subject: string) => () => sink.received.filter((r) => r.event?.subject === subject);

  /** Publishes a sentinel after `subject`'s events arrived, so a late duplicate would be seen too. */
  async function settle(device: string) {
    const sentinel = `${device}-sentinel`;
    await v5.publishAsync(`devices/${sentinel}/telemetry`, json({ metrics: { s: 1 } }), { qos: 1 });
    await sink.waitFor((received) => received.some((r) => r.event?.subject === sentinel));
  }

  it.each([
    ['MQTT 3.1.1', () => v311],
    ['MQTT 5', () => v5],
  ])('delivers a QoS 1 telemetry message from an %s device as exactly one CloudEvent', async (_name, client) => {
    const device = uniqueName('dev');
    const payload = { ts: '2026-01-01T00:00:00.000Z', metrics: { temperature: 21.5 }, msgId: 'm-1' };
    await client().publishAsync(`devices/${device}/telemetry`, json(payload), { qos: 1 });
    await sink.waitFor(() => withSubject(device)().length >= 1);
    await settle(device);

    const events = withSubject(device)();
    expect(events).toHaveLength(1);
    expect(events[0]!.event).toMatchObject({
      specversion: '1.0',
      type: 'io.kiot.telemetry.received',
      subject: device,
      source,
      id: `${device}:m-1@2026-01-01T00:00:00.000Z`,
      datacontenttype: 'application/json',
      data: payload,
    });
    expect(Number.isNaN(Date.parse(events[0]!.event!.time!))).toBe(false);
    expect(events[0]!.headers['ce-id']).toBe(`${device}:m-1@2026-01-01T00:00:00.000Z`);
  });

  it('derives a stable id from the session and packet when there is no msgId', async () => {
    const device = uniqueName('dev');
    await v5.publishAsync(`devices/${device}/telemetry`, json([{ metrics: { a: 1 } }, { metrics: { a: 2 } }]), {
      qos: 1,
    });
    await sink.waitFor(() => withSubject(device)().length >= 1);
    const event = withSubject(device)()[0]!.event!;
    expect(event.id).toMatch(/^mqtt-[0-9a-f]{32}$/);
    expect(event.data).toEqual([{ metrics: { a: 1 } }, { metrics: { a: 2 } }]);
  });

  it('maps every topic of the scheme to its event type', async () => {
    const device = uniqueName('dev');
    const requestId = uniqueName('req');
    await v311.publishAsync(`devices/${device}/state/reported`, json({ firmware: '1.2.3' }), { qos: 1 });
    await v311.publishAsync(`devices/${device}/status`, 'online', { qos: 1, retain: true });
    await v311.publishAsync(
      `devices/${device}/commands/cmd-7/ack`,
      json({ status: 'succeeded', result: { ok: true } }),
      { qos: 1 },
    );
    await v311.publishAsync(`provisioning/${requestId}/request`, json({ claimToken: 't', name: 'n' }), { qos: 1 });
    await v311.publishAsync(`devices/${device}/status`, 'offline', { qos: 1 });
    await sink.waitFor(() => withSubject(device)().length >= 4 && withSubject(requestId)().length >= 1);

    const byType = new Map(withSubject(device)().map((r) => [r.event!.type, r.event!]));
    expect(byType.get('io.kiot.state.reported')?.data).toEqual({ firmware: '1.2.3' });
    expect(byType.get('io.kiot.device.connected')?.data).toEqual({ status: 'online' });
    expect(byType.get('io.kiot.device.disconnected')?.data).toEqual({ status: 'offline' });
    const ack = byType.get('io.kiot.command.acknowledged')!;
    expect(ack.data).toEqual({ status: 'succeeded', result: { ok: true }, commandId: 'cmd-7' });
    expect(ack.commandid).toBe('cmd-7');
    const provisioning = withSubject(requestId)()[0]!.event!;
    expect(provisioning).toMatchObject({
      type: 'io.kiot.provisioning.requested',
      data: { claimToken: 't', requestId },
    });
    await v311.publishAsync(`devices/${device}/status`, '', { qos: 1, retain: true }); // clear the retained birth
  });

  it('keeps a binary-mode CloudEvent from an MQTT 5 device intact, but not a spoofed subject', async () => {
    const device = uniqueName('dev');
    const sent = new CloudEvent({
      id: uniqueName('ce'),
      source: 'urn:device:sensor',
      type: 'io.kiot.telemetry.received',
      subject: 'someone-else',
      time: '2026-02-03T04:05:06.000Z',
      datacontenttype: 'application/json',
      data: { metrics: { humidity: 40 } },
      firmware: 'v2',
    });
    const message = MQTT.binary(sent);
    const userProperties = Object.fromEntries(
      Object.entries(message.headers).flatMap(([k, v]) => (v === undefined ? [] : [[k, String(v)]])),
    );
    await v5.publishAsync(`devices/${device}/telemetry`, JSON.stringify(message.body), {
      qos: 1,
      properties: { contentType: 'application/json', userProperties },
    });
    await sink.waitFor(() => withSubject(device)().length >= 1);
    const event = withSubject(device)()[0]!.event!;
    expect(event).toMatchObject({
      id: sent.id,
      type: sent.type,
      time: sent.time,
      subject: device,
      source,
      firmware: 'v2',
      devicesource: 'urn:device:sensor',
      data: { metrics: { humidity: 40 } },
    });
  });

  it('keeps a structured-mode CloudEvent from an MQTT 5 device intact', async () => {
    const device = uniqueName('dev');
    const sent = new CloudEvent({
      id: uniqueName('ce'),
      source: 'urn:device:door',
      type: 'io.kiot.command.acknowledged',
      datacontenttype: 'application/json',
      data: { status: 'accepted' },
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    });
    const message = MQTT.structured(sent);
    await v5.publishAsync(`devices/${device}/commands/c-9/ack`, JSON.stringify(message.body), {
      qos: 1,
      properties: { contentType: 'application/cloudevents+json' },
    });
    await sink.waitFor(() => withSubject(device)().length >= 1);
    expect(withSubject(device)()[0]!.event).toMatchObject({
      id: sent.id,
      type: 'io.kiot.command.acknowledged',
      subject: device,
      commandid: 'c-9',
      traceparent: sent.traceparent,
      data: { status: 'accepted', commandId: 'c-9' },
    });
  });

  it('refuses a device CloudEvent whose type its topic does not carry, and tells the device', async () => {
    const device = uniqueName('dev');
    const watcher = await connectDevice();
    const errors = await collect(watcher, `devices/${device}/errors`);
    const sent = new CloudEvent({
      id: uniqueName('ce'),
      source: 'urn:x',
      type: 'io.kiot.device.registered',
      data: { a: 1 },
    });
    await v5.publishAsync(`devices/${device}/telemetry`, JSON.stringify(MQTT.structured(sent).body), {
      qos: 1,
      properties: { contentType: 'application/cloudevents+json' },
    });
    await deadLetter.waitFor((received) => received.some((r) => r.event?.subject === device));
    await new Promise<void>((resolve, reject) => {
      const timer = setInterval(() => {
        if (errors.length === 0) return;
        clearInterval(timer);
        resolve();
      }, 20);
      setTimeout(() => {
        clearInterval(timer);
        reject(new Error('no device error'));
      }, 15_000);
    });
    expect(JSON.parse(errors[0]!.payload.toString())).toMatchObject({
      code: 'type_not_allowed',
      topic: `devices/${device}/telemetry`,
    });
    expect(withSubject(device)()).toHaveLength(0);
    await watcher.endAsync();
  });

  it('reports healthy sessions and counts what it forwarded', async () => {
    const health = await fetch(`${bridge.url}/healthz`);
    expect(health.status).toBe(200);
    const metrics = await (await fetch(`${bridge.url}/metrics`)).text();
    expect(metrics).toMatch(/kiot_bridge_events_forwarded_total\{type="io.kiot.telemetry.received"\} [1-9]/);
    expect(metrics).toContain('kiot_bridge_forward_latency_seconds_bucket');
    expect(metrics).toContain('kiot_bridge_in_flight_messages');
  });
});
