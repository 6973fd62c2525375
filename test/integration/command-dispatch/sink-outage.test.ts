import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSinkServer, type ReceivedRequest, type SinkServer } from '../../support/sink-server.js';
import { uniqueName } from '../../support/services.js';
import { startHarness, type Harness } from './harness.js';

// Creating a command for an online device sends the QUEUED event, then the publish, to K_SINK: when
// either fails the command must neither be lost nor leave a twin behind for the app's retry.
describe('command-dispatch when K_SINK fails during a create', () => {
  let sink: SinkServer;
  let h: Harness;

  beforeAll(async () => {
    sink = await startSinkServer();
    h = await startHarness({ sink: sink.url });
  });
  afterAll(async () => {
    sink.respond = () => ({ status: 202 });
    await h.close();
    await sink.close();
  });

  const onlineDevice = async () => {
    const id = uniqueName('dev');
    await h.registerDevice(id);
    expect(await h.connected(id)).toBe(204);
    return id;
  };
  const forDevice = (deviceId: string, type: string) => (r: ReceivedRequest) => r.event?.type === type && r.event.subject === deviceId;
  const commandsOf = async (deviceId: string) => (await h.request('GET', `/devices/${deviceId}/commands`)).body.items as { id: string; status: string }[];

  it('answers 503 and keeps nothing when the sink is down', async () => {
    const id = await onlineDevice();
    sink.respond = (r) => ({ status: r.event?.subject === id ? 503 : 202 });
    try {
      const created = await h.request('POST', `/devices/${id}/commands`, { name: 'reboot' });
      expect(created.status).toBe(503);
      expect(created.body).toMatchObject({ error: { code: 'dependency_unavailable', details: { dependency: 'event sink' } } });
    } finally {
      sink.respond = () => ({ status: 202 });
    }
    expect(await commandsOf(id)).toEqual([]);
  });

  it('keeps the command QUEUED when only the publish fails, and sends it on the next connect', async () => {
    const id = await onlineDevice();
    const isPublish = forDevice(id, 'io.kiot.mqtt.publish');
    sink.respond = (r) => ({ status: isPublish(r) ? 503 : 202 });
    let created;
    try {
      created = await h.request('POST', `/devices/${id}/commands`, { name: 'reboot' });
    } finally {
      sink.respond = () => ({ status: 202 });
    }
    expect(created.status).toBe(202);
    expect(created.body).toMatchObject({ status: 'QUEUED', attempts: 0 });
    expect(sink.received.filter(forDevice(id, 'io.kiot.command.queued'))).toHaveLength(1);

    expect(await h.connected(id)).toBe(204);
    expect((await h.request('GET', `/commands/${created.body.id}`)).body).toMatchObject({ status: 'SENT', attempts: 1 });
  });
});
