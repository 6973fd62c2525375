import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BridgeHandle } from '../../../bridge/bridge.js';
import { CloudEvent, toBinaryMessage } from '../../../shared/cloudevents.js';
import { MQTT_URL, uniqueName } from '../../support/services.js';
import { type SinkServer, startSinkServer } from '../../support/sink-server.js';
import { collect, connectDevice, startTestBridge, waitUntil } from './helpers.js';

// CloudEvents → MQTT: what a Trigger POSTs to the bridge reaches a subscribed device.
describe('bridge: io.kiot.mqtt.publish', () => {
  let sink: SinkServer;
  let deadLetter: SinkServer;
  let bridge: BridgeHandle;
  let device: MqttClient;
  const id = uniqueName('dev');

  beforeAll(async () => {
    sink = await startSinkServer();
    deadLetter = await startSinkServer();
    ({ bridge } = await startTestBridge({ sink, deadLetter, env: { MAX_PAYLOAD_BYTES: '2048' } }));
    device = await connectDevice(MQTT_URL);
  });

  afterAll(async () => {
    await device?.publishAsync(`devices/${id}/state/desired`, '', { qos: 1, retain: true });
    await device?.endAsync();
    await bridge?.close();
    await sink?.close();
    await deadLetter?.close();
  });

  const post = (data: unknown) => {
    const event = new CloudEvent({
      id: uniqueName('e'),
      source: '/kiot/command-dispatch',
      type: 'io.kiot.mqtt.publish',
      data,
    });
    const message = toBinaryMessage(event);
    return fetch(bridge.url, { method: 'POST', headers: message.headers, body: message.body });
  };

  it('publishes a QoS 1 command and answers only after the broker acknowledged', async () => {
    const got = await collect(device, `devices/${id}/commands/+`);
    const command = { name: 'reboot', params: { delay: 1 }, expiresAt: '2030-01-01T00:00:00Z' };
    const response = await post({
      topic: `devices/${id}/commands/c-1`,
      payload: command,
      qos: 1,
      properties: { contentType: 'application/json', messageExpiryInterval: 60, userProperties: { origin: 'test' } },
    });
    expect(response.status).toBe(204);
    await waitUntil(() => got.length === 1, 'the command');
    expect(JSON.parse(got[0]!.payload.toString())).toEqual(command);
    expect(got[0]!.properties).toMatchObject({ contentType: 'application/json', userProperties: { origin: 'test' } });
  });

  it('publishes a retained desired state that a later subscriber gets', async () => {
    const response = await post({ topic: `devices/${id}/state/desired`, payload: { led: 'on' }, retain: true });
    expect(response.status).toBe(204);
    const late = await connectDevice(MQTT_URL);
    const got = await collect(late, `devices/${id}/state/desired`);
    await waitUntil(() => got.length === 1, 'the retained message');
    expect(got[0]).toMatchObject({ retain: true });
    expect(JSON.parse(got[0]!.payload.toString())).toEqual({ led: 'on' });
    await late.endAsync();
  });

  it('decodes base64 and utf8 payloads, and publishes QoS 0 and 2', async () => {
    const got = await collect(device, `devices/${id}/raw/+`);
    expect(
      (
        await post({
          topic: `devices/${id}/raw/a`,
          payload: Buffer.from([1, 2, 3]).toString('base64'),
          encoding: 'base64',
          qos: 2,
        })
      ).status,
    ).toBe(204);
    expect((await post({ topic: `devices/${id}/raw/b`, payload: 'plain text', qos: 0 })).status).toBe(204);
    await waitUntil(() => got.length === 2, 'both messages');
    const byTopic = new Map(got.map((m) => [m.topic, m.payload]));
    expect(byTopic.get(`devices/${id}/raw/a`)).toEqual(Buffer.from([1, 2, 3]));
    expect(byTopic.get(`devices/${id}/raw/b`)?.toString()).toBe('plain text');
  });

  it.each([
    ['a wildcard topic', { topic: 'devices/+/commands/x', payload: 'x' }],
    ['a $ topic', { topic: '$SYS/broker/x', payload: 'x' }],
    ['an empty topic', { topic: '', payload: 'x' }],
    ['no payload', { topic: 'devices/a/x' }],
    ['QoS 3', { topic: 'devices/a/x', payload: 'x', qos: 3 }],
    ['base64 that is not', { topic: 'devices/a/x', payload: '***', encoding: 'base64' }],
    ['an object with utf8 encoding', { topic: 'devices/a/x', payload: { a: 1 }, encoding: 'utf8' }],
    ['an unknown property', { topic: 'devices/a/x', payload: 'x', properties: { topicAlias: 3 } }],
  ])('answers 400 for %s', async (_name, data) => {
    const response = await post(data);
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: { code: 'invalid_input' } });
  });

  it('answers 413 for a payload over the limit, 400 for an event type it does not consume', async () => {
    expect((await post({ topic: `devices/${id}/x`, payload: 'y'.repeat(3000) })).status).toBe(413);
    const other = toBinaryMessage(new CloudEvent({ id: 'o', source: '/t', type: 'io.kiot.other', data: {} }));
    expect((await fetch(bridge.url, { method: 'POST', headers: other.headers, body: other.body })).status).toBe(400);
  });
});
