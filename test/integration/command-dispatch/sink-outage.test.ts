import { describe, expect, it } from 'vitest';
import type { ReceivedRequest } from '../../support/sink-server.js';
import { harnessFixture } from './harness.js';

// Creating a command for an online device sends the QUEUED event, then the publish, to K_SINK: when
// either fails the command must neither be lost nor leave a twin behind for the app's retry.
describe('command-dispatch when K_SINK fails during a create', () => {
  const f = harnessFixture();
  const onlineDevice = () => f.h.onlineDevice();
  const forDevice = (deviceId: string, type: string) => (r: ReceivedRequest) =>
    r.event?.type === type && r.event.subject === deviceId;
  const commandsOf = async (deviceId: string) =>
    (await f.h.request('GET', `/devices/${deviceId}/commands`)).body.items as { id: string; status: string }[];

  it('answers 503 and keeps nothing when the sink is down', async () => {
    const id = await onlineDevice();
    f.sink.respond = (r) => ({ status: r.event?.subject === id ? 503 : 202 });
    try {
      const created = await f.h.request('POST', `/devices/${id}/commands`, { name: 'reboot' });
      expect(created.status).toBe(503);
      expect(created.body).toMatchObject({
        error: { code: 'dependency_unavailable', details: { dependency: 'event sink' } },
      });
    } finally {
      f.sink.respond = () => ({ status: 202 });
    }
    expect(await commandsOf(id)).toEqual([]);
  });

  it('keeps the command QUEUED when only the publish fails, and sends it on the next connect', async () => {
    const id = await onlineDevice();
    const isPublish = forDevice(id, 'io.kiot.mqtt.publish');
    f.sink.respond = (r) => ({ status: isPublish(r) ? 503 : 202 });
    let created: Awaited<ReturnType<typeof f.h.request>>;
    try {
      created = await f.h.request('POST', `/devices/${id}/commands`, { name: 'reboot' });
    } finally {
      f.sink.respond = () => ({ status: 202 });
    }
    expect(created.status).toBe(202);
    expect(created.body).toMatchObject({ status: 'QUEUED', attempts: 0 });
    expect(f.sink.received.filter(forDevice(id, 'io.kiot.command.queued'))).toHaveLength(1);

    expect(await f.h.connected(id)).toBe(204);
    expect((await f.h.request('GET', `/commands/${created.body.id}`)).body).toMatchObject({
      status: 'SENT',
      attempts: 1,
    });
  });
});
