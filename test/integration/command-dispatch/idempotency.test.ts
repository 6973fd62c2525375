import { describe, expect, it } from 'vitest';
import { harnessFixture } from './harness.js';

// Idempotency-Key on command creation (draft-ietf-httpapi-idempotency-key-header), against real MongoDB
// and Redis over real HTTP: a retry whose first answer was lost gets the same command, never a second send.
describe('command-dispatch Idempotency-Key', () => {
  const f = harnessFixture({ instances: 2 });
  const onlineDevice = () => f.h.onlineDevice();
  const publishesTo = (deviceId: string) =>
    f.sink.received.filter((r) => r.event?.type === 'io.kiot.mqtt.publish' && r.event.subject === deviceId);
  const create = (deviceId: string, body: object, key?: string, instance = 0) =>
    f.h.request(
      'POST',
      `/devices/${deviceId}/commands`,
      body,
      instance,
      key === undefined ? {} : { 'idempotency-key': key },
    );

  it('answers a retry with the command the first request created, and sends it once', async () => {
    const id = await onlineDevice();
    const first = await create(id, { name: 'reboot', params: { delay: 1 } }, '"k-1"');
    expect(first.status).toBe(202);
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    // The same key quoted or bare (RFC 8941 string), on another instance, params in another key order.
    const retry = await create(id, { params: { delay: 1 }, name: 'reboot' }, 'k-1', 1);
    expect(retry.status).toBe(202);
    expect(retry.headers.get('idempotent-replayed')).toBe('true');
    expect(retry.body.id).toBe(first.body.id);
    expect(retry.headers.get('location')).toBe(`/commands/${first.body.id}`);
    expect(publishesTo(id)).toHaveLength(1);
    expect((await f.h.request('GET', `/devices/${id}/commands`)).body.items).toHaveLength(1);

    // Another key is another command.
    const other = await create(id, { name: 'reboot', params: { delay: 1 } }, 'k-2');
    expect(other.body.id).not.toBe(first.body.id);
  });

  it('refuses the key reused for a different command (422) and lets the same key on another device through', async () => {
    const id = await onlineDevice();
    expect((await create(id, { name: 'reboot' }, 'same')).status).toBe(202);
    const reused = await create(id, { name: 'shutdown' }, 'same');
    expect(reused.status).toBe(422);
    expect(reused.body.error).toMatchObject({ code: 'idempotency_key_reused' });
    const elsewhere = await create(await onlineDevice(), { name: 'shutdown' }, 'same');
    expect(elsewhere.status).toBe(202);
  });

  it('a synchronous retry gets the device answer the first call is waiting for, or already got', async () => {
    const id = await onlineDevice();
    const body = { name: 'read', params: { register: 7 }, wait: 5 };
    const firstCall = create(id, body, 'sync-1');
    await f.sink.waitFor(() => publishesTo(id).length === 1);
    const commandId = (publishesTo(id)[0]!.event!.data as { topic: string }).topic.split('/')[3]!;
    const retryCall = create(id, body, 'sync-1', 1);
    // Both callers wait on the one command; the device answers once.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await f.h.ack(id, commandId, 'succeeded', { result: { value: 42 } })).toBe(204);
    const [first, retry] = await Promise.all([firstCall, retryCall]);
    expect(first.status).toBe(200);
    expect(retry.status).toBe(200);
    expect(retry.body).toMatchObject({ id: commandId, status: 'SUCCEEDED', result: { value: 42 } });
    expect(retry.headers.get('idempotent-replayed')).toBe('true');

    // After the answer, a retry answers at once from the store.
    const late = await create(id, body, 'sync-1');
    expect(late.status).toBe(200);
    expect(late.body).toMatchObject({ id: commandId, status: 'SUCCEEDED', result: { value: 42 } });
    expect(publishesTo(id)).toHaveLength(1);
  });

  it('concurrent requests under one key create one command', async () => {
    const id = await onlineDevice();
    const answers = await Promise.all(
      Array.from({ length: 6 }, (_, i) => create(id, { name: 'blink' }, 'burst', i % 2)),
    );
    expect(answers.map((a) => a.status)).toEqual(Array(6).fill(202));
    expect(new Set(answers.map((a) => a.body.id)).size).toBe(1);
    expect(answers.filter((a) => a.headers.get('idempotent-replayed') === 'true')).toHaveLength(5);
    expect(publishesTo(id)).toHaveLength(1);
  });

  it('refuses a malformed key with 400', async () => {
    const id = await onlineDevice();
    for (const key of ['', 'has space', 'x'.repeat(256), 'ünïcode']) {
      const answer = await create(id, { name: 'reboot' }, key);
      expect(answer.status, JSON.stringify(key)).toBe(400);
    }
  });
});
