import mqtt, { type MqttClient, type Packet } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { BridgeHandle } from '../../../bridge/bridge.js';
import { MQTT_URL, uniqueName } from '../../support/services.js';
import { type SinkServer, startSinkServer } from '../../support/sink-server.js';
import { collect, connectDevice, json, startTestBridge, waitUntil } from './helpers.js';

// At least once (ARCHITECTURE "Delivery guarantees"): no PUBACK before the sink's 2xx; a permanent
// refusal is dead-lettered once, not retried forever, not lost.
describe('bridge: delivery to the sink', () => {
  let sink: SinkServer;
  let deadLetter: SinkServer;
  let bridge: BridgeHandle;
  let device: MqttClient;
  /** What happened, in order: sink answers and the PUBACKs the bridge's sessions sent. */
  const journal: string[] = [];

  beforeAll(async () => {
    sink = await startSinkServer();
    deadLetter = await startSinkServer();
    // Watch every packet the bridge's subscriber sessions send, to see when a PUBACK leaves.
    const connect = (url: string, options: mqtt.IClientOptions) => {
      const client = mqtt.connect(url, options);
      if (/-s\d+$/.test(options.clientId ?? '')) {
        // The broker shares this Mosquitto with other tests: note which topic each packet id carried.
        const topics = new Map<number, string>();
        client.on('packetreceive', (packet: Packet) => {
          if (packet.cmd === 'publish' && packet.messageId !== undefined) topics.set(packet.messageId, packet.topic);
        });
        client.on('packetsend', (packet: Packet) => {
          if (packet.cmd === 'puback') journal.push(`puback:${topics.get(packet.messageId!)}`);
        });
      }
      return client;
    };
    // One event per message (BATCH_MAX_COUNT=1); batching.test.ts holds the same guarantees for batches.
    ({ bridge } = await startTestBridge({ sink, deadLetter, env: { BATCH_MAX_COUNT: '1' }, deps: { connect } }));
    device = await connectDevice(MQTT_URL);
  });

  afterEach(() => {
    sink.respond = () => ({ status: 202 });
  });

  afterAll(async () => {
    await device?.endAsync();
    await bridge?.close();
    await sink?.close();
    await deadLetter?.close();
  });

  it('retries while the sink answers 503 and acknowledges the message only after the 2xx', async () => {
    const id = uniqueName('dev');
    let failures = 0;
    sink.respond = (request) => {
      if (request.event?.subject !== id) return { status: 202 };
      const status = failures < 3 ? 503 : 202;
      if (status === 503) failures += 1;
      journal.push(`sink:${status}:${id}`);
      return { status };
    };
    await device.publishAsync(`devices/${id}/telemetry`, json({ metrics: { v: 1 }, msgId: 'x', ts: 1 }), { qos: 1 });
    await sink.waitFor((received) => received.filter((r) => r.event?.subject === id).length >= 4);
    const ours = () => journal.filter((entry) => entry.endsWith(id) || entry === `puback:devices/${id}/telemetry`);
    await waitUntil(() => ours().some((entry) => entry.startsWith('puback')), 'the PUBACK');

    // Three 503s, then the 2xx, and only then the PUBACK.
    expect(ours()).toEqual([
      `sink:503:${id}`,
      `sink:503:${id}`,
      `sink:503:${id}`,
      `sink:202:${id}`,
      `puback:devices/${id}/telemetry`,
    ]);
    const attempts = sink.received.filter((r) => r.event?.subject === id);
    expect(new Set(attempts.map((r) => r.event!.id))).toEqual(new Set([`${id}:x@1`]));
    const metrics = await (await fetch(`${bridge.url}/metrics`)).text();
    expect(metrics).toMatch(/kiot_bridge_delivery_retries_total\{target="sink"\} [3-9]/);
  });

  it('dead-letters a permanent 4xx once, tells the device, and keeps going', async () => {
    const id = uniqueName('dev');
    const watcher = await connectDevice(MQTT_URL);
    const errors = await collect(watcher, `devices/${id}/errors`);
    sink.respond = (request) =>
      request.event?.subject === id && (request.event.data as { metrics?: { v?: number } }).metrics?.v === 1
        ? {
            status: 400,
            headers: { 'content-type': 'application/json' },
            body: '{"error":{"code":"invalid_input","message":"no"}}',
          }
        : { status: 202 };
    await device.publishAsync(`devices/${id}/telemetry`, json({ metrics: { v: 1 }, msgId: 'bad', ts: 1 }), { qos: 1 });
    await deadLetter.waitFor((received) => received.some((r) => r.event?.subject === id));
    await waitUntil(() => errors.length > 0, 'the device error');
    await device.publishAsync(`devices/${id}/telemetry`, json({ metrics: { v: 2 }, msgId: 'good', ts: 1 }), { qos: 1 });
    await sink.waitFor((received) => received.some((r) => r.event?.id === `${id}:good@1`));

    const record = deadLetter.received.find((r) => r.event?.subject === id)!.event!;
    expect(record).toMatchObject({
      type: 'io.kiot.bridge.rejected',
      id: `${id}:bad@1:rejected`,
      data: {
        reason: { code: 'refused_by_sink', sinkStatus: 400, sinkAnswer: expect.stringContaining('invalid_input') },
        topic: `devices/${id}/telemetry`,
        eventId: `${id}:bad@1`,
        payloadBase64: json({ metrics: { v: 1 }, msgId: 'bad', ts: 1 }).toString('base64'),
        truncated: false,
      },
    });
    expect(sink.received.filter((r) => r.event?.id === `${id}:bad@1`)).toHaveLength(1);
    expect(JSON.parse(errors[0]!.payload.toString())).toMatchObject({
      code: 'refused_by_sink',
      topic: `devices/${id}/telemetry`,
    });
    const metrics = await (await fetch(`${bridge.url}/metrics`)).text();
    expect(metrics).toMatch(/kiot_bridge_dead_lettered_total\{reason="refused_by_sink"\} [1-9]/);
    await watcher.endAsync();
  });

  it('retries the dead-letter sink until it accepts the record', async () => {
    const id = uniqueName('dev');
    let refusals = 0;
    deadLetter.respond = (request) =>
      request.event?.subject === id && refusals++ < 2 ? { status: 500 } : { status: 202 };
    await device.publishAsync(`devices/${id}/telemetry`, 'not json', { qos: 1 });
    await deadLetter.waitFor((received) => received.filter((r) => r.event?.subject === id).length >= 3);
    expect(new Set(deadLetter.received.filter((r) => r.event?.subject === id).map((r) => r.event!.id)).size).toBe(1);
    deadLetter.respond = () => ({ status: 202 });
  });
});
