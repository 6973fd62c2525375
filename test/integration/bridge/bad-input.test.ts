import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BridgeHandle } from '../../../bridge/bridge.js';
import { MQTT_URL, uniqueName } from '../../support/services.js';
import { type SinkServer, startSinkServer } from '../../support/sink-server.js';
import { type Collected, collect, connectDevice, forwardedIn, json, startTestBridge, waitUntil } from './helpers.js';

// Nothing silently dropped: every refused message reaches the dead-letter sink and its device hears why.
describe('bridge: bad input', () => {
  const MAX = 1024;
  let sink: SinkServer;
  let deadLetter: SinkServer;
  let bridge: BridgeHandle;
  let device: MqttClient;
  let watcher: MqttClient;
  let errors: Collected[];
  const prefix = uniqueName('bad');

  beforeAll(async () => {
    sink = await startSinkServer();
    deadLetter = await startSinkServer();
    ({ bridge } = await startTestBridge({ sink, deadLetter, env: { MAX_PAYLOAD_BYTES: String(MAX) } }));
    device = await connectDevice(MQTT_URL, { protocolVersion: 4 });
    watcher = await connectDevice(MQTT_URL);
    errors = await collect(watcher, 'devices/+/errors');
  });

  afterAll(async () => {
    await device?.endAsync();
    await watcher?.endAsync();
    await bridge?.close();
    await sink?.close();
    await deadLetter?.close();
  });

  async function refused(id: string, topic: string, payload: Buffer) {
    await device.publishAsync(topic, payload, { qos: 1 });
    await deadLetter.waitFor((received) =>
      received.some((r) => r.event?.data && (r.event.data as { topic: string }).topic === topic),
    );
    await waitUntil(() => errors.some((e) => e.topic === `devices/${id}/errors`), `an error for ${id}`);
    const record = deadLetter.received.find((r) => (r.event?.data as { topic?: string } | undefined)?.topic === topic)!
      .event!;
    const error = JSON.parse(errors.find((e) => e.topic === `devices/${id}/errors`)!.payload.toString());
    return { record, error, data: record.data as Record<string, unknown> & { reason: { code: string } } };
  }

  it.each([
    ['non-JSON', 'invalid_json', Buffer.from('temperature=21')],
    ['invalid UTF-8', 'invalid_json', Buffer.from([0x7b, 0xff, 0xfe, 0x7d])],
    ['a JSON scalar', 'invalid_payload', json(42)],
    [
      'a $-prefixed key, nested',
      'forbidden_key',
      json({ metrics: { t: 1 }, meta: [{ ok: 1 }, { $where: 'sleep(1)' }], msgId: 'm-9' }),
    ],
  ])('refuses %s', async (_name, code, payload) => {
    const id = `${prefix}-${code}-${Math.random().toString(36).slice(2, 6)}`;
    const topic = `devices/${id}/telemetry`;
    const { record, error, data } = await refused(id, topic, payload);
    expect(error).toMatchObject({ code, topic, message: expect.any(String) });
    expect(record).toMatchObject({ type: 'io.kiot.bridge.rejected', subject: id });
    expect(data).toMatchObject({
      reason: { code },
      topic,
      payloadBase64: payload.toString('base64'),
      payloadBytes: payload.length,
      truncated: false,
    });
    if (code === 'forbidden_key') expect(error.msgId).toBe('m-9');
  });

  it('refuses an oversize payload and keeps only its beginning', async () => {
    const id = `${prefix}-big`;
    const topic = `devices/${id}/state/reported`;
    const payload = json({ blob: 'x'.repeat(6000) });
    const { error, data } = await refused(id, topic, payload);
    expect(error).toMatchObject({ code: 'payload_too_large', topic });
    expect(data).toMatchObject({
      reason: { code: 'payload_too_large' },
      payloadBytes: payload.length,
      truncated: true,
    });
    expect(Buffer.from(data.payloadBase64 as string, 'base64')).toEqual(payload.subarray(0, 4096));
  });

  it('refuses topics outside the scheme: an invalid device id, an empty command id, a bad status', async () => {
    const badId = `${prefix}~weird`;
    const first = await refused(badId, `devices/${badId}/telemetry`, json({ metrics: { t: 1 } }));
    expect(first.error).toMatchObject({ code: 'topic_outside_scheme' });
    const id = `${prefix}-cmd`;
    const second = await refused(id, `devices/${id}/commands//ack`, json({ status: 'accepted' }));
    expect(second.error).toMatchObject({ code: 'topic_outside_scheme', topic: `devices/${id}/commands//ack` });
    const statusId = `${prefix}-status`;
    const third = await refused(statusId, `devices/${statusId}/status`, Buffer.from('maybe'));
    expect(third.error).toMatchObject({ code: 'invalid_status' });
  });

  it('keeps working after all that, and never forwarded any of it', async () => {
    const id = `${prefix}-fine`;
    await device.publishAsync(`devices/${id}/telemetry`, json({ metrics: { t: 2 }, msgId: 'ok', ts: 1 }), { qos: 1 });
    await sink.waitFor((received) => forwardedIn(received).some((m) => m.id === `${id}:ok@1`));
    expect(forwardedIn(sink.received).filter((m) => m.subject?.startsWith(prefix) && m.subject !== id)).toEqual([]);
    expect((await fetch(`${bridge.url}/healthz`)).status).toBe(200);
  });
});
