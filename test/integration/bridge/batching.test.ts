import mqtt, { type MqttClient, type Packet } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { BridgeHandle } from '../../../bridge/bridge.js';
import { type PrivateMosquitto, startMosquitto } from '../../support/mosquitto.js';
import { uniqueName } from '../../support/services.js';
import { type ReceivedRequest, type SinkServer, startSinkServer } from '../../support/sink-server.js';
import { carries, connectDevice, forwarded, forwardedIn, json, startTestBridge, waitUntil } from './helpers.js';

const BATCH = 'io.kiot.telemetry.batch';
const batchesOf = (received: ReceivedRequest[], device: string) =>
  received.filter((r) => r.event?.type === BATCH && carries(r, device));
const metric = async (bridge: BridgeHandle, pattern: RegExp) =>
  Number(pattern.exec(await (await fetch(`${bridge.url}/metrics`)).text())?.[1] ?? 0);

// Telemetry batching (io.kiot.telemetry.batch) against a real Mosquitto of this file's own (what closes a batch
// is counted exactly, so no other test's devices may share it) and a real HTTP sink.
describe('bridge: telemetry batches', () => {
  let broker: PrivateMosquitto;
  let sink: SinkServer;
  let deadLetter: SinkServer;
  let device: MqttClient;
  const bridges: BridgeHandle[] = [];
  const start = async (env: Record<string, string>, deps = {}) => {
    const { bridge } = await startTestBridge({ mqttUrl: broker.url, sink, deadLetter, env, deps });
    bridges.push(bridge);
    return bridge;
  };
  const publish = (id: string, n: number, extra: Record<string, unknown> = {}) =>
    device.publishAsync(`devices/${id}/telemetry`, json({ metrics: { n }, msgId: `m${n}`, ts: 1, ...extra }), {
      qos: 1,
    });

  beforeAll(async () => {
    broker = await startMosquitto({ persistence: false });
    sink = await startSinkServer();
    deadLetter = await startSinkServer();
    device = await connectDevice(broker.url);
  });
  afterEach(async () => {
    sink.respond = () => ({ status: 202 });
    await Promise.all(bridges.splice(0).map((bridge) => bridge.close()));
  });
  afterAll(async () => {
    await device?.endAsync();
    await sink?.close();
    await deadLetter?.close();
    await broker?.dispose();
  });

  it('sends telemetry as batches of complete messages; a state report stays a single event', async () => {
    const id = uniqueName('dev');
    await start({ BATCH_MAX_COUNT: '100', BATCH_LINGER_MS: '200' });
    for (let n = 0; n < 20; n += 1) await publish(id, n);
    await device.publishAsync(`devices/${id}/state/reported`, json({ fw: '1.0' }), { qos: 1 });
    await sink.waitFor((received) => forwardedIn(received).filter((m) => m.subject === id).length === 21);

    const batches = batchesOf(sink.received, id);
    expect(batches.length).toBeGreaterThanOrEqual(1);
    const batch = batches[0]!.event!;
    expect(batch).toMatchObject({ type: BATCH, datacontenttype: 'application/json', source: expect.any(String) });
    expect(batches[0]!.headers['content-type']).toMatch(/^application\/json/);
    // Each item is everything its single event would carry: id, device, time, content type and payload.
    const item = (batch.data as unknown[]).find((entry) => (entry as { id: string }).id === `${id}:m0@1`);
    expect(item).toEqual({
      id: `${id}:m0@1`,
      subject: id,
      time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      datacontenttype: 'application/json',
      data: { metrics: { n: 0 }, msgId: 'm0', ts: 1 },
    });
    const telemetry = forwardedIn(batches).filter((m) => m.subject === id);
    expect(telemetry.map((m) => m.id).sort()).toEqual(Array.from({ length: 20 }, (_, n) => `${id}:m${n}@1`).sort());
    const state = sink.received.filter((r) => r.event?.type === 'io.kiot.state.reported' && r.event.subject === id);
    expect(state).toHaveLength(1);
  });

  it('closes a batch at the maximum count', async () => {
    const id = uniqueName('dev');
    // A linger far longer than the test: only the count can close these batches.
    const bridge = await start({ BATCH_MAX_COUNT: '5', BATCH_LINGER_MS: '60000', BRIDGE_SESSIONS: '1' });
    await Promise.all(Array.from({ length: 10 }, (_, n) => publish(id, n)));
    await sink.waitFor((received) => forwardedIn(received).filter((m) => m.subject === id).length === 10);
    expect(batchesOf(sink.received, id).map((r) => forwarded(r).length)).toEqual([5, 5]);
    expect(await metric(bridge, /kiot_bridge_batches_total\{reason="count"\} (\d+)/)).toBeGreaterThanOrEqual(2);
  });

  it('closes a batch before it would pass the maximum size', async () => {
    const id = uniqueName('dev');
    const bridge = await start({ BATCH_MAX_COUNT: '1000', BATCH_MAX_BYTES: '2048', BATCH_LINGER_MS: '500' });
    const padding = 'x'.repeat(300);
    await Promise.all(Array.from({ length: 20 }, (_, n) => publish(id, n, { padding })));
    await sink.waitFor((received) => forwardedIn(received).filter((m) => m.subject === id).length === 20);
    const batches = batchesOf(sink.received, id);
    expect(batches.length).toBeGreaterThan(3);
    for (const batch of batches) expect(batch.body.length).toBeLessThanOrEqual(2048);
    expect(await metric(bridge, /kiot_bridge_batches_total\{reason="bytes"\} (\d+)/)).toBeGreaterThanOrEqual(3);
  });

  it('closes a batch after the linger time, however few messages it holds', async () => {
    const id = uniqueName('dev');
    const bridge = await start({ BATCH_MAX_COUNT: '1000', BATCH_LINGER_MS: '50' });
    await publish(id, 1);
    await sink.waitFor((received) => batchesOf(received, id).length === 1);
    expect(forwarded(batchesOf(sink.received, id)[0]!).filter((m) => m.subject === id)).toHaveLength(1);
    expect(await metric(bridge, /kiot_bridge_batches_total\{reason="linger"\} (\d+)/)).toBeGreaterThanOrEqual(1);
  });

  it('sends a message larger than the batch size limit alone, as its single event', async () => {
    const id = uniqueName('dev');
    await start({ BATCH_MAX_COUNT: '1000', BATCH_MAX_BYTES: '1024', BATCH_LINGER_MS: '50' });
    await publish(id, 1, { padding: 'y'.repeat(2000) });
    await publish(id, 2);
    await sink.waitFor((received) => forwardedIn(received).filter((m) => m.subject === id).length === 2);
    const alone = sink.received.find((r) => r.event?.type === 'io.kiot.telemetry.received' && r.event.subject === id);
    expect(alone?.event).toMatchObject({ id: `${id}:m1@1`, data: { metrics: { n: 1 } } });
    expect(forwardedIn(batchesOf(sink.received, id)).map((m) => m.id)).toEqual([`${id}:m2@1`]);
  });

  it('when the sink refuses a batch as a whole (4xx), sends its messages one by one', async () => {
    const id = uniqueName('dev');
    sink.respond = (request) => ({ status: request.event?.type === BATCH && carries(request, id) ? 413 : 202 });
    await start({ BATCH_MAX_COUNT: '10', BATCH_LINGER_MS: '20' });
    for (let n = 0; n < 3; n += 1) await publish(id, n);
    const singles = () =>
      sink.received.filter((r) => r.event?.type === 'io.kiot.telemetry.received' && r.event.subject === id);
    await sink.waitFor(() => singles().length === 3);
    expect(
      singles()
        .map((r) => r.event!.id)
        .sort(),
    ).toEqual([`${id}:m0@1`, `${id}:m1@1`, `${id}:m2@1`]);
    expect(deadLetter.received.filter((r) => r.body.includes(id))).toHaveLength(0);
  });

  it('holds at most MAX_IN_FLIGHT_BYTES of unacknowledged payload (plus the one message read last), then reads on', async () => {
    const id = uniqueName('dev');
    const padding = 'p'.repeat(1_000);
    const size = json({ metrics: { n: 10 }, msgId: 'm10', ts: 1, padding }).length;
    // The sink is down for this device: its batches are retried, so every message read stays unacknowledged.
    let down = true;
    sink.respond = (request) => ({ status: down && carries(request, id) ? 503 : 202 });
    // A window of 32 messages, but room for only 4 KiB of them.
    const bridge = await start({
      BRIDGE_SESSIONS: '1',
      MAX_IN_FLIGHT: '32',
      MAX_IN_FLIGHT_BYTES: '4096',
      BATCH_MAX_COUNT: '1000',
      BATCH_LINGER_MS: '20',
    });
    await Promise.all(Array.from({ length: 20 }, (_, n) => publish(id, n + 10, { padding })));
    await sink.waitFor((received) => received.filter((r) => carries(r, id)).length >= 3);
    await new Promise((resolve) => setTimeout(resolve, 200));
    // The session reads while less than 4,096 bytes are held: 4 messages of ~1 KB, not the 20 its window allows.
    const held = await metric(bridge, /^kiot_bridge_in_flight_messages (\d+)/m);
    const heldBytes = await metric(bridge, /^kiot_bridge_in_flight_bytes (\d+)/m);
    expect(held).toBe(Math.ceil(4096 / size));
    expect(heldBytes).toBe(held * size);
    expect(heldBytes).toBeLessThan(4096 + size);
    expect(await metric(bridge, /kiot_bridge_reads_held_total\{bound="bytes"\} (\d+)/)).toBeGreaterThanOrEqual(1);

    // Once batches are accepted the session reads on: every message arrives, and nothing stays held.
    down = false;
    await sink.waitFor(
      (received) =>
        new Set(
          forwardedIn(received)
            .filter((m) => m.subject === id)
            .map((m) => m.id),
        ).size === 20,
    );
    await waitUntil(async () => (await metric(bridge, /^kiot_bridge_in_flight_bytes (\d+)/m)) === 0, 'nothing held');
  });

  it('acknowledges every message of a batch only after the sink accepted it, retrying 503s', async () => {
    const id = uniqueName('dev');
    const journal: string[] = [];
    // Watch the PUBACKs the bridge's sessions send (the shared broker carries other tests' devices too).
    const connect = (url: string, options: mqtt.IClientOptions) => {
      const client = mqtt.connect(url, options);
      if (/-s\d+$/.test(options.clientId ?? '')) {
        const topics = new Map<number, string>();
        client.on('packetreceive', (packet: Packet) => {
          if (packet.cmd === 'publish' && packet.messageId !== undefined) topics.set(packet.messageId, packet.topic);
        });
        client.on('packetsend', (packet: Packet) => {
          if (packet.cmd === 'puback' && topics.get(packet.messageId!) === `devices/${id}/telemetry`)
            journal.push('puback');
        });
      }
      return client;
    };
    let failures = 0;
    sink.respond = (request) => {
      if (!carries(request, id)) return { status: 202 };
      const status = failures < 3 ? 503 : 202;
      if (status === 503) failures += 1;
      journal.push(`sink:${status}`);
      return { status };
    };
    await start({ BATCH_MAX_COUNT: '100', BATCH_LINGER_MS: '100' }, { connect });
    await Promise.all(Array.from({ length: 5 }, (_, n) => publish(id, n)));
    await waitUntil(() => journal.filter((entry) => entry === 'puback').length === 5, 'the five PUBACKs');

    // Three 503s, the 202, and only then the PUBACKs: none of them before the batch was accepted.
    const accepted = journal.indexOf('sink:202');
    expect(journal.slice(0, accepted)).toEqual(['sink:503', 'sink:503', 'sink:503']);
    expect(journal.slice(accepted + 1).every((entry) => entry === 'puback')).toBe(true);
    expect(new Set(batchesOf(sink.received, id).map((r) => r.event!.id)).size).toBe(1);
  });
});
