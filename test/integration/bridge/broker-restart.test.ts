import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BridgeHandle } from '../../../bridge/bridge.js';
import { CloudEvent, toBinaryMessage } from '../../../shared/cloudevents.js';
import { type PrivateMosquitto, startMosquitto } from '../../support/mosquitto.js';
import { uniqueName } from '../../support/services.js';
import { type SinkServer, startSinkServer } from '../../support/sink-server.js';
import { answering, collect, connectDevice, forwardedIn, json, startTestBridge, waitUntil } from './helpers.js';

// A private Mosquitto with persistence that this file stops and starts (CONTRIBUTING: never the shared one).
describe('bridge: the broker restarts', () => {
  let broker: PrivateMosquitto;
  let sink: SinkServer;
  let deadLetter: SinkServer;
  let bridge: BridgeHandle;
  let device: MqttClient;
  const id = uniqueName('dev');
  let answers: ReturnType<typeof answering>;
  const delivered = (msgId: string) => answers.accepted.includes(`${id}:${msgId}@1`);

  beforeAll(async () => {
    broker = await startMosquitto({ persistence: true });
    sink = await startSinkServer();
    answers = answering(sink);
    deadLetter = await startSinkServer();
    ({ bridge } = await startTestBridge({ mqttUrl: broker.url, sink, deadLetter }));
    device = await connectDevice(broker.url, {
      clientId: uniqueName('d'),
      clean: false,
      properties: { sessionExpiryInterval: 600 },
    });
  });

  afterAll(async () => {
    await device?.endAsync(true);
    await bridge?.close();
    await sink?.close();
    await deadLetter?.close();
    await broker?.dispose();
  });

  const publishEvent = (data: unknown) => {
    const message = toBinaryMessage(
      new CloudEvent({ id: uniqueName('e'), source: '/t', type: 'io.kiot.mqtt.publish', data }),
    );
    return fetch(bridge.url, { method: 'POST', headers: message.headers, body: message.body });
  };

  it('reconnects after a restart, resumes its sessions and delivers what was in flight', async () => {
    // Prepare: delivery works; then the sink fails, so one message is held unacknowledged by the bridge.
    await device.publishAsync(`devices/${id}/telemetry`, json({ metrics: { n: 1 }, msgId: 'before', ts: 1 }), {
      qos: 1,
    });
    await sink.waitFor(() => delivered('before'));
    answers.policy = () => ({ status: 503 });
    await device.publishAsync(`devices/${id}/telemetry`, json({ metrics: { n: 2 }, msgId: 'held', ts: 1 }), { qos: 1 });
    await sink.waitFor((received) => forwardedIn(received).some((m) => m.id === `${id}:held@1`));

    // Act: the broker goes away.
    await broker.stop();
    await waitUntil(async () => (await fetch(`${bridge.url}/healthz`)).status === 503, '/healthz to report 503');
    const whileDown = await publishEvent({ topic: `devices/${id}/commands/c1`, payload: { name: 'x' } });
    expect(whileDown.status).toBe(503);

    // ... and comes back with its persisted sessions; the sink recovers.
    await broker.start();
    answers.policy = () => ({ status: 202 });
    await waitUntil(
      async () => (await fetch(`${bridge.url}/healthz`)).status === 200,
      '/healthz to report 200 again',
      30_000,
    );
    await sink.waitFor(() => delivered('held'), 30_000);
    await waitUntil(() => device.connected, 'the device to reconnect', 30_000);
    await device.publishAsync(`devices/${id}/telemetry`, json({ metrics: { n: 3 }, msgId: 'after', ts: 1 }), {
      qos: 1,
    });
    await sink.waitFor(() => delivered('after'), 30_000);

    // Assess: publishing works again too.
    const listener = await connectDevice(broker.url);
    const got = await collect(listener, `devices/${id}/commands/+`);
    expect((await publishEvent({ topic: `devices/${id}/commands/c2`, payload: { name: 'y' } })).status).toBe(204);
    await waitUntil(() => got.length === 1, 'the command after the restart');
    await listener.endAsync();
    expect(answers.accepted.filter((eventId) => eventId === `${id}:held@1`)).toHaveLength(1);
  });
});
