import { describe, expect, it } from 'vitest';
import { uniqueName } from '../../support/services.js';
import { harnessFixture } from './harness.js';

// Two command-dispatch instances on one MongoDB database and one Redis prefix, as two Knative replicas:
// the caller waits on instance 0, the device's ack reaches instance 1.
describe('command-dispatch synchronous calls across instances', () => {
  const f = harnessFixture({ instances: 2 });

  it('wakes the caller on one instance with the result acknowledged on the other', async () => {
    const id = uniqueName('dev');
    await f.h.registerDevice(id);
    await f.h.connected(id);
    const pending = f.h.request(
      'POST',
      `/devices/${id}/commands`,
      { name: 'read', params: { what: 'fw' }, wait: 20 },
      0,
    );
    await f.sink.waitFor((r) => r.some((x) => x.event?.type === 'io.kiot.mqtt.publish' && x.event.subject === id));
    const publish = f.sink.received.find((x) => x.event?.type === 'io.kiot.mqtt.publish' && x.event.subject === id)!;
    const commandId = (publish.event!.data as { topic: string }).topic.split('/')[3]!;

    expect(await f.h.ack(id, commandId, 'accepted', {}, undefined, 1)).toBe(204);
    expect(await f.h.ack(id, commandId, 'succeeded', { result: { fw: '1.2.3' } }, undefined, 1)).toBe(204);

    const answered = await pending;
    expect(answered.status).toBe(200);
    expect(answered.body).toMatchObject({ id: commandId, status: 'SUCCEEDED', result: { fw: '1.2.3' } });
  });

  it('wakes several callers on both instances, each with its own command', async () => {
    const id = uniqueName('dev');
    await f.h.registerDevice(id);
    await f.h.connected(id);
    f.sink.respond = (r) => {
      if (r.event?.type === 'io.kiot.mqtt.publish' && r.event.subject === id) {
        const commandId = (r.event.data as { topic: string }).topic.split('/')[3]!;
        const params = (r.event.data as { payload: { params: { n: number } } }).payload.params;
        // Acks land on the instance the caller is not waiting on.
        acks.push(f.h.ack(id, commandId, 'succeeded', { result: params.n * 2 }, undefined, (params.n + 1) % 2));
      }
      return { status: 202 };
    };
    const acks: Promise<number>[] = [];
    const calls = await Promise.all(
      Array.from({ length: 10 }, (_, n) =>
        f.h.request('POST', `/devices/${id}/commands`, { name: 'double', params: { n }, wait: 20 }, n % 2),
      ),
    );
    f.sink.respond = () => ({ status: 202 });
    expect(await Promise.all(acks)).toEqual(Array(10).fill(204));
    expect(calls.map((c) => c.status)).toEqual(Array(10).fill(200));
    expect(calls.map((c) => c.body.result)).toEqual(Array.from({ length: 10 }, (_, n) => n * 2));
  });
});
