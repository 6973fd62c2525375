import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueName } from '../../support/services.js';
import { type ReceivedRequest, type SinkServer, startSinkServer } from '../../support/sink-server.js';
import { eventually, type Harness, startHarness } from './harness.js';

// command-dispatch over real HTTP with real MongoDB and Redis; K_SINK is a recording sink, and the
// bridge's part (acks, presence) is played by CloudEvents shaped as the bridge emits them.
describe('command-dispatch lifecycle (events at a sink)', () => {
  let sink: SinkServer;
  let h: Harness;

  beforeAll(async () => {
    sink = await startSinkServer();
    h = await startHarness({ sink: sink.url, env: { COMMAND_QUEUE_CAP: '3', COMMAND_MAX_RESENDS: '1' } });
  });
  afterAll(async () => {
    await h.close();
    await sink.close();
  });

  const device = async () => {
    const id = uniqueName('dev');
    await h.registerDevice(id);
    return id;
  };
  const publishes = (deviceId: string) =>
    sink.received.filter((r) => r.event?.type === 'io.kiot.mqtt.publish' && r.event.subject === deviceId);
  const publishData = (r: ReceivedRequest) =>
    r.event!.data as {
      topic: string;
      payload: { name: string; params: unknown; expiresAt: string };
      qos: number;
      retain: boolean;
    };
  const lifecycleEvents = (commandId: string) =>
    sink.received.filter(
      (r) => r.event?.type.startsWith('io.kiot.command.') && (r.event.data as { id?: string }).id === commandId,
    );

  it('sends a command to an online device at once and follows its acks to SUCCEEDED', async () => {
    const id = await device();
    expect(await h.connected(id)).toBe(204);
    const created = await h.request('POST', `/devices/${id}/commands`, { name: 'reboot', params: { delay: 1 } });
    expect(created.status).toBe(202);
    expect(created.body).toMatchObject({ deviceId: id, name: 'reboot', status: 'SENT', attempts: 1 });
    const commandId = created.body.id as string;
    expect(created.headers.get('location')).toBe(`/commands/${commandId}`);

    const [publish] = publishes(id);
    expect(publishData(publish!)).toEqual({
      topic: `devices/${id}/commands/${commandId}`,
      payload: { name: 'reboot', params: { delay: 1 }, expiresAt: created.body.expiresAt },
      qos: 1,
      retain: false,
    });

    expect(await h.ack(id, commandId, 'accepted')).toBe(204);
    expect((await h.request('GET', `/commands/${commandId}`)).body.status).toBe('DELIVERED');
    expect(await h.ack(id, commandId, 'succeeded', { result: { uptime: 0 } })).toBe(204);
    const done = await h.request('GET', `/commands/${commandId}`);
    expect(done.body).toMatchObject({ status: 'SUCCEEDED', result: { uptime: 0 } });
    expect(done.body.history.map((e: { status: string }) => e.status)).toEqual([
      'QUEUED',
      'SENT',
      'DELIVERED',
      'SUCCEEDED',
    ]);

    await sink.waitFor(() => lifecycleEvents(commandId).length >= 4);
    expect(
      lifecycleEvents(commandId)
        .map((r) => r.event!.type)
        .sort(),
    ).toEqual(
      [
        'io.kiot.command.delivered',
        'io.kiot.command.queued',
        'io.kiot.command.sent',
        'io.kiot.command.succeeded',
      ].sort(),
    );
  });

  it('answers a synchronous call with the device result (200)', async () => {
    const id = await device();
    await h.connected(id);
    // The "device" answers as soon as the publish reaches the sink.
    const acks: Promise<number>[] = [];
    sink.respond = (r) => {
      if (r.event?.type === 'io.kiot.mqtt.publish' && r.event.subject === id) {
        const commandId = publishData(r).topic.split('/')[3]!;
        acks.push(h.ack(id, commandId, 'succeeded', { result: { temperature: 21.5 } }));
      }
      return { status: 202 };
    };
    const answered = await h.request('POST', `/devices/${id}/commands`, { name: 'read', wait: 10 });
    sink.respond = () => ({ status: 202 });
    expect(await Promise.all(acks)).toEqual([204]);
    expect(answered.status).toBe(200);
    expect(answered.body).toMatchObject({ status: 'SUCCEEDED', result: { temperature: 21.5 } });
  });

  it('answers 504 with the command id when the device never answers, and later TIMED_OUT', async () => {
    const id = await device();
    await h.connected(id);
    const late = await h.request('POST', `/devices/${id}/commands`, { name: 'slow', timeoutSeconds: 1, wait: 1 });
    expect(late.status).toBe(504);
    expect(late.body).toMatchObject({
      error: { code: 'device_timeout', details: { commandId: expect.any(String) } },
      command: { status: 'SENT' },
    });
    const commandId = late.body.command.id as string;
    // Past the deadline, a PingSource tick (as Knative would send it) runs the sweep.
    const deadline = Date.parse(late.body.command.deadlineAt);
    await eventually(async () => Date.now() > deadline);
    expect(
      await h.sendEvent({
        type: 'dev.knative.sources.ping',
        data: { task: 'command-sweep' },
        extensions: { kiottask: 'command-sweep' },
      }),
    ).toBe(204);
    expect((await h.request('GET', `/commands/${commandId}`)).body.status).toBe('TIMED_OUT');
    // A late answer changes nothing.
    expect(await h.ack(id, commandId, 'succeeded', { result: 1 })).toBe(204);
    const after = await h.request('GET', `/commands/${commandId}`);
    expect(after.body.status).toBe('TIMED_OUT');
    expect(after.body.result).toBeUndefined();
  });

  it('queues for an offline device, sends in order on connect, never sends an expired one, and cancels', async () => {
    const id = await device();
    const first = await h.request('POST', `/devices/${id}/commands`, { name: 'first' });
    const expiring = await h.request('POST', `/devices/${id}/commands`, { name: 'expiring', ttlSeconds: 1 });
    const cancelled = await h.request('POST', `/devices/${id}/commands`, { name: 'cancelled' });
    expect([first.status, expiring.status, cancelled.status]).toEqual([202, 202, 202]);
    expect(first.body.status).toBe('QUEUED');
    // The cap is 3: a fourth waiting command is refused.
    const full = await h.request('POST', `/devices/${id}/commands`, { name: 'overflow' });
    expect(full.status).toBe(429);
    expect(full.body.error.code).toBe('rate_limited');

    const cancel = await h.request('DELETE', `/commands/${cancelled.body.id}`);
    expect(cancel.status).toBe(200);
    expect(cancel.body.status).toBe('CANCELLED');
    const second = await h.request('POST', `/devices/${id}/commands`, { name: 'second' });
    expect(second.body.status).toBe('QUEUED');
    expect(publishes(id)).toHaveLength(0);

    await eventually(async () => Date.now() > Date.parse(expiring.body.expiresAt));
    await h.connected(id);
    // One at a time: the next goes once the device accepted the one before.
    await sink.waitFor(() => publishes(id).length === 1);
    expect(publishData(publishes(id)[0]!).payload.name).toBe('first');
    await h.ack(id, first.body.id, 'accepted');
    await sink.waitFor(() => publishes(id).length === 2);
    expect(publishData(publishes(id)[1]!).payload.name).toBe('second');
    await h.ack(id, second.body.id, 'succeeded');

    expect((await h.request('GET', `/commands/${expiring.body.id}`)).body.status).toBe('EXPIRED');
    expect(publishes(id).map((r) => publishData(r).payload.name)).toEqual(['first', 'second']);
    // Cancelling what was already sent is a conflict.
    expect((await h.request('DELETE', `/commands/${first.body.id}`)).status).toBe(409);
  });

  it('ignores duplicate and late acks', async () => {
    const id = await device();
    await h.connected(id);
    const { body } = await h.request('POST', `/devices/${id}/commands`, { name: 'dup' });
    const ackId = uniqueName('ack');
    expect(await h.ack(id, body.id, 'succeeded', { result: 'ok' }, ackId)).toBe(204);
    // The same ack redelivered (same event id), a different late ack, an "accepted" after the result.
    expect(await h.ack(id, body.id, 'succeeded', { result: 'ok' }, ackId)).toBe(204);
    expect(await h.ack(id, body.id, 'failed', { error: 'late' })).toBe(204);
    expect(await h.ack(id, body.id, 'accepted')).toBe(204);
    const after = (await h.request('GET', `/commands/${body.id}`)).body;
    expect(after).toMatchObject({ status: 'SUCCEEDED', result: 'ok' });
    expect(after.error).toBeUndefined();
    expect(after.history.map((e: { status: string }) => e.status)).toEqual(['QUEUED', 'SENT', 'SUCCEEDED']);
    // Re-announcements keep their id, so consumers see one `succeeded` event.
    await sink.waitFor(() => lifecycleEvents(body.id).some((r) => r.event!.type === 'io.kiot.command.succeeded'));
    const ids = new Set(
      lifecycleEvents(body.id)
        .filter((r) => r.event!.type === 'io.kiot.command.succeeded')
        .map((r) => r.event!.id),
    );
    expect(ids.size).toBe(1);
  });

  it('re-sends an unacknowledged command on reconnect under the same id, a bounded number of times', async () => {
    const id = await device();
    const t0 = Date.now();
    await h.connected(id, new Date(t0));
    const { body } = await h.request('POST', `/devices/${id}/commands`, { name: 'lost' });
    expect(body.status).toBe('SENT');
    await h.disconnected(id, new Date(t0 + 1));
    await h.connected(id, new Date(t0 + 2));
    await sink.waitFor(() => publishes(id).length === 2);
    // COMMAND_MAX_RESENDS=1: a third connect sends nothing more.
    await h.disconnected(id, new Date(t0 + 3));
    await h.connected(id, new Date(t0 + 4));
    expect(publishes(id).map((r) => publishData(r).topic)).toEqual([
      `devices/${id}/commands/${body.id}`,
      `devices/${id}/commands/${body.id}`,
    ]);
    expect((await h.request('GET', `/commands/${body.id}`)).body).toMatchObject({ status: 'SENT', attempts: 2 });
    // The device dedupes by id and acks once.
    await h.ack(id, body.id, 'succeeded');
    expect((await h.request('GET', `/commands/${body.id}`)).body.status).toBe('SUCCEEDED');
  });

  it('on reconnect re-sends the unanswered command first and the queued one after its ack', async () => {
    const id = await device();
    const t0 = Date.now();
    await h.connected(id, new Date(t0));
    const a = (await h.request('POST', `/devices/${id}/commands`, { name: 'a' })).body;
    await h.disconnected(id, new Date(t0 + 1));
    const b = (await h.request('POST', `/devices/${id}/commands`, { name: 'b' })).body;
    expect([a.status, b.status]).toEqual(['SENT', 'QUEUED']);
    await h.connected(id, new Date(t0 + 2));
    await sink.waitFor(() => publishes(id).length === 2);
    expect(publishes(id).map((r) => publishData(r).payload.name)).toEqual(['a', 'a']);
    await h.ack(id, a.id, 'succeeded');
    await sink.waitFor(() => publishes(id).length === 3);
    expect(publishData(publishes(id)[2]!).payload.name).toBe('b');
  });

  it('keeps presence by event time: a stale connect after a newer disconnect does not flush', async () => {
    const id = await device();
    const t0 = Date.now();
    await h.disconnected(id, new Date(t0 + 10));
    await h.connected(id, new Date(t0)); // delivered late, older than the disconnect
    const { body } = await h.request('POST', `/devices/${id}/commands`, { name: 'waits' });
    expect(body.status).toBe('QUEUED');
    expect(publishes(id)).toHaveLength(0);
  });

  it('validates input: 400 bad body, 404 unknown device or command, 422 for an ack of an unknown command', async () => {
    const id = await device();
    expect((await h.request('POST', `/devices/${id}/commands`, { params: {} })).status).toBe(400);
    expect((await h.request('POST', `/devices/${id}/commands`, { name: 'x', wait: 301 })).status).toBe(400);
    expect((await h.request('POST', `/devices/${id}/commands`, { name: 'x', extra: 1 })).status).toBe(400);
    const unknown = await h.request('POST', `/devices/${uniqueName('nobody')}/commands`, { name: 'x' });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('unknown_device');
    const disabled = uniqueName('off');
    await h.registerDevice(disabled, 'disabled');
    expect((await h.request('POST', `/devices/${disabled}/commands`, { name: 'x' })).status).toBe(422);
    expect((await h.request('GET', `/commands/${uniqueName('none')}`)).status).toBe(404);
    expect(await h.ack(id, uniqueName('none'), 'succeeded')).toBe(422);
    expect(await h.sendEvent({ type: 'io.kiot.command.acknowledged', subject: id, data: { status: 'maybe' } })).toBe(
      400,
    );
    // A tick of another function's PingSource that reached us is refused, not run.
    expect(await h.sendEvent({ type: 'dev.knative.sources.ping', data: { task: 'telemetry-retention' } })).toBe(422);
  });

  it('lists a device’s commands by status with cursor pagination', async () => {
    const id = await device();
    await h.connected(id);
    const ids: string[] = [];
    for (let i = 0; i < 5; i += 1)
      ids.push((await h.request('POST', `/devices/${id}/commands`, { name: `c${i}` })).body.id);
    await h.ack(id, ids[0]!, 'succeeded');
    await h.ack(id, ids[1]!, 'failed', { error: { code: 'E1' } });

    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await h.request('GET', `/devices/${id}/commands?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.status).toBe(200);
      expect(page.body.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.body.items.map((c: { id: string }) => c.id));
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(seen.sort()).toEqual([...ids].sort());

    const done = await h.request('GET', `/devices/${id}/commands?status=succeeded,FAILED`);
    expect(done.body.items.map((c: { id: string }) => c.id).sort()).toEqual([ids[0], ids[1]].sort());
    expect((await h.request('GET', `/devices/${id}/commands?status=BOGUS`)).status).toBe(400);
    expect((await h.request('GET', `/devices/${id}/commands?cursor=notacursor`)).status).toBe(400);
  });

  it('lists the fleet’s commands by status and counts those in flight (GET /commands, /command-summary)', async () => {
    const before = (await h.request('GET', '/command-summary')).body;
    const online = await device();
    await h.connected(online);
    const offline = await device();
    const sent = (await h.request('POST', `/devices/${online}/commands`, { name: 'a' })).body.id as string;
    const queued = (await h.request('POST', `/devices/${offline}/commands`, { name: 'b' })).body.id as string;
    const done = (await h.request('POST', `/devices/${online}/commands`, { name: 'c' })).body.id as string;
    await h.ack(online, done, 'succeeded');

    const after = (await h.request('GET', '/command-summary')).body;
    expect(after.byStatus.SENT - before.byStatus.SENT).toBe(1);
    expect(after.byStatus.QUEUED - before.byStatus.QUEUED).toBe(1);
    expect(after.inFlight).toBe(after.byStatus.QUEUED + after.byStatus.SENT + after.byStatus.DELIVERED);

    const seen: { id: string; status: string }[] = [];
    let cursor: string | undefined;
    do {
      const page = await h.request('GET', `/commands?status=QUEUED,SENT&limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.status).toBe(200);
      seen.push(...page.body.items);
      cursor = page.body.nextCursor;
    } while (cursor);
    const ids = seen.map((c) => c.id);
    expect(ids).toEqual(expect.arrayContaining([sent, queued]));
    expect(ids).not.toContain(done);
    expect(new Set(ids).size).toBe(ids.length);
    expect(seen.every((c) => c.status === 'QUEUED' || c.status === 'SENT')).toBe(true);
  });

  it('needs an API key with the commands scope', async () => {
    const id = await device();
    const base = h.instances[0]!.base;
    expect((await fetch(`${base}/devices/${id}/commands`)).status).toBe(401);
    const bad = await fetch(`${base}/commands/x`, {
      headers: { authorization: 'Bearer kiot_nobody_AAAAAAAAAAAAAAAAAAAAAAAAAAAA' },
    });
    expect(bad.status).toBe(401);
  });
});
