import { beforeAll, describe, expect, it } from 'vitest';
import { CloudEvent, toBinaryMessage } from '../../../shared/cloudevents.js';
import { createDeviceDirectory } from '../../../shared/devices.js';
import { createMongo, type MongoHandle } from '../../../shared/mongo.js';
import { MONGODB_URL, uniqueName } from '../../support/services.js';
import type { ReceivedRequest } from '../../support/sink-server.js';
import { type Harness, startHarness } from './harness.js';
import { useOutboxSuite } from './outbox-harness.js';

// io.kiot.device.* through the single-document outbox, against a K_SINK that answers 503 and then recovers.
// No local timer here (OUTBOX_FLUSH_INTERVAL_MS=0): what reaches the sink after the outage was flushed by a
// later request, or by an explicit flush.
describe('device-registry outbox (nothing dropped while K_SINK is down)', () => {
  const suite = useOutboxSuite({ OUTBOX_STALE_MS: '100', OUTBOX_FLUSH_INTERVAL_MS: '0' });
  const { sink } = suite;
  let h: Harness;
  let mongo: MongoHandle;
  beforeAll(() => {
    h = suite.harness();
    mongo = suite.mongo();
  });

  // `accepted` restarts whenever the sink goes down: the tests look at what the outage held back.
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  const acceptedFor = (id: string) => sink.accepted.filter((event) => event.subject === id);
  /** Makes ordinary requests (each may start a flush of stale events) until `done` holds. */
  async function requestUntil(done: () => boolean): Promise<void> {
    for (let i = 0; i < 300 && !done(); i += 1) {
      expect((await h.api('/devices?limit=1', { key: h.keys.reader })).status).toBe(200);
      await sleep(50);
    }
    expect(done()).toBe(true);
  }
  /** Each event id accepted exactly once. */
  const expectOncePerId = (events: CloudEvent<unknown>[]) => {
    const ids = events.map((event) => event.id);
    expect(new Set(ids).size).toBe(ids.length);
  };
  const register = async (body: Record<string, unknown>) => {
    const response = await h.api('/devices', { body });
    expect(response.status).toBe(201);
    return (await response.json()) as { device: { id: string; version: number }; secret: string };
  };

  it('answers 201 while the sink is down, keeps the event, and delivers it once after recovery', async () => {
    const id = uniqueName('down');
    sink.down = true;
    sink.accepted = [];
    const refusedBefore = h.sink.received.length;
    await register({ id, tags: ['outbox'] });
    // The sink was asked (and said 503); the change is durable and readable, the event waits in the document.
    expect(h.sink.received.slice(refusedBefore).some((r) => r.event?.subject === id)).toBe(true);
    expect((await h.api(`/devices/${id}`)).status).toBe(200);
    const pending = await h.registry.deps.devices.pendingOf(id);
    expect(pending?.tombstone).toBe(false);
    expect(pending?.events).toEqual([
      expect.objectContaining({
        type: 'io.kiot.device.registered',
        subject: id,
        id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      }),
    ]);
    const eventId = pending!.events[0]!.id;

    // A flush while the sink is still down changes nothing.
    expect((await h.registry.outbox.flush()).failed).toBe(true);
    expect((await h.registry.deps.devices.pendingOf(id))?.events).toHaveLength(1);

    sink.down = false;
    await requestUntil(() => acceptedFor(id).length > 0);
    expect(acceptedFor(id).map((event) => [event.id, event.type])).toEqual([[eventId, 'io.kiot.device.registered']]);
    expect(acceptedFor(id)[0]!.data).toMatchObject({ id, tags: ['outbox'], version: 1 });
    await waitSettled(id);

    // More flushes and requests: nothing is sent again.
    await h.registry.outbox.flush();
    await h.api('/devices?limit=1');
    await h.registry.outbox.flush();
    expect(acceptedFor(id)).toHaveLength(1);
  });

  it('keeps the order of registered, updated and rotated events of one device across an outage', async () => {
    const id = uniqueName('order');
    sink.down = true;
    sink.accepted = [];
    const { device } = await register({ id });
    const patched = await h.api(`/devices/${id}`, {
      method: 'PATCH',
      body: { name: 'renamed' },
      headers: { 'if-match': `"${device.version}"` },
    });
    expect(patched.status).toBe(200);
    expect((await h.api(`/devices/${id}/credentials`, { method: 'POST' })).status).toBe(201);
    const bulk = await h.api('/devices/bulk', { body: { devices: [{ id: `${id}-b1` }, { id: `${id}-b2` }] } });
    expect(bulk.status).toBe(200);
    expect((await h.registry.deps.devices.pendingOf(id))?.events.map((event) => event.type)).toEqual([
      'io.kiot.device.registered',
      'io.kiot.device.updated',
      'io.kiot.device.updated',
    ]);

    sink.down = false;
    await requestUntil(
      () =>
        acceptedFor(id).length === 3 && acceptedFor(`${id}-b1`).length === 1 && acceptedFor(`${id}-b2`).length === 1,
    );
    const events = acceptedFor(id);
    expect(events.map((event) => [event.type, (event.data as { version: number }).version])).toEqual([
      ['io.kiot.device.registered', 1],
      ['io.kiot.device.updated', 2],
      ['io.kiot.device.updated', 3],
    ]);
    expect(events[1]!.data).toMatchObject({ name: 'renamed', changed: ['name'] });
    expect(events[2]!.data).toMatchObject({ changed: ['credential'] });
    expectOncePerId(sink.accepted);
    await waitSettled(id);
  });

  it('leaves a tombstone on delete that no read path returns, and removes it after the flush', async () => {
    const id = uniqueName('tomb');
    const { secret } = await register({ id, tags: ['tomb'] });
    sink.down = true;
    sink.accepted = [];
    expect((await h.api(`/devices/${id}`, { method: 'DELETE' })).status).toBe(204);

    // Still in MongoDB as a tombstone owing its event…
    const pending = await h.registry.deps.devices.pendingOf(id);
    expect(pending).toMatchObject({
      tombstone: true,
      events: [expect.objectContaining({ type: 'io.kiot.device.deleted', subject: id })],
    });
    const raw = await (await mongo.db()).collection('devices').findOne({ _id: id as never });
    expect(Object.keys(raw!).sort()).toEqual(['_id', 'deletedAt', 'pendingEvents', 'status']);
    // …and absent for every reader: GET, PATCH, rotate, DELETE, list, the broker hooks.
    expect((await h.api(`/devices/${id}`)).status).toBe(404);
    expect(
      (await h.api(`/devices/${id}`, { method: 'PATCH', body: { name: 'x' }, headers: { 'if-match': '"1"' } })).status,
    ).toBe(404);
    expect((await h.api(`/devices/${id}/credentials`, { method: 'POST' })).status).toBe(404);
    expect((await h.api(`/devices/${id}`, { method: 'DELETE' })).status).toBe(404);
    const listed = (await (await h.api('/devices?tag=tomb')).json()) as { items: { id: string }[] };
    expect(listed.items.map((item) => item.id)).not.toContain(id);
    const page = (await (await h.api('/devices?limit=500')).json()) as { items: { id: string }[] };
    expect(page.items.map((item) => item.id)).not.toContain(id);
    const authn = await h.api('/broker/authn', {
      key: h.keys.hooks,
      body: { clientid: id, username: id, password: secret },
    });
    expect(((await authn.json()) as { result: string }).result).toBe('ignore');
    const authz = await h.api('/broker/authz', {
      key: h.keys.hooks,
      body: { clientid: id, username: id, topic: `devices/${id}/telemetry`, action: 'publish' },
    });
    expect(((await authz.json()) as { result: string }).result).toBe('ignore');
    // Other capabilities read devices through shared/devices.ts: there the tombstone is absent too.
    expect(await createDeviceDirectory(mongo, { ttlMs: 0 }).device(id)).toBeUndefined();

    sink.down = false;
    await requestUntil(() => acceptedFor(id).some((event) => event.type === 'io.kiot.device.deleted'));
    expect(acceptedFor(id).filter((event) => event.type === 'io.kiot.device.deleted')).toHaveLength(1);
    expect(acceptedFor(id)[0]!.data).toMatchObject({ id, tags: ['tomb'], version: 2 });
    // The tombstone is gone once its event is out.
    for (let i = 0; i < 100 && (await h.registry.deps.devices.pendingOf(id)); i += 1) await sleep(50);
    expect(await h.registry.deps.devices.pendingOf(id)).toBeUndefined();
    expect(await createDeviceDirectory(mongo, { ttlMs: 0 }).device(id)).toBeUndefined();
    await h.registry.outbox.flush();
    expectOncePerId(sink.accepted);
  });

  it('re-registers a deleted id while its deletion is still pending: deleted goes out before registered', async () => {
    const id = uniqueName('again');
    await register({ id, name: 'first' });
    sink.down = true;
    sink.accepted = [];
    expect((await h.api(`/devices/${id}`, { method: 'DELETE' })).status).toBe(204);
    const second = await register({ id, name: 'second' });
    expect((await (await h.api(`/devices/${id}`)).json()) as Record<string, unknown>).toMatchObject({
      name: 'second',
      version: 1,
    });
    expect((await h.registry.deps.devices.pendingOf(id))?.events.map((event) => event.type)).toEqual([
      'io.kiot.device.deleted',
      'io.kiot.device.registered',
    ]);

    sink.down = false;
    await requestUntil(() => acceptedFor(id).length === 2);
    expect(acceptedFor(id).map((event) => [event.type, (event.data as { name: string }).name])).toEqual([
      ['io.kiot.device.deleted', 'first'],
      ['io.kiot.device.registered', 'second'],
    ]);
    await waitSettled(id);
    expect((await h.registry.deps.devices.pendingOf(id))?.tombstone).toBe(false);
    expect(second.secret).toEqual(expect.any(String));
  });

  it('gives a claimed tombstone back, with its pending deletion, when the broker refuses the new registration', async () => {
    const id = uniqueName('giveback');
    await register({ id });
    sink.down = true;
    sink.accepted = [];
    expect((await h.api(`/devices/${id}`, { method: 'DELETE' })).status).toBe(204);
    await h.broker.stop();
    try {
      expect((await h.api('/devices', { body: { id } })).status).toBe(503);
    } finally {
      await h.broker.start();
    }
    expect(await h.registry.deps.devices.pendingOf(id)).toMatchObject({
      tombstone: true,
      events: [expect.objectContaining({ type: 'io.kiot.device.deleted' })],
    });
    expect((await h.api(`/devices/${id}`)).status).toBe(404);

    sink.down = false;
    await requestUntil(() => acceptedFor(id).length === 1);
    for (let i = 0; i < 100 && (await h.registry.deps.devices.pendingOf(id)); i += 1) await sleep(50);
    expect(await h.registry.deps.devices.pendingOf(id)).toBeUndefined();
  });

  /** Waits until the device's outbox is empty (the pull follows the sink's answer). */
  async function waitSettled(id: string): Promise<void> {
    for (let i = 0; i < 100 && ((await h.registry.deps.devices.pendingOf(id))?.events.length ?? 0) > 0; i += 1)
      await sleep(50);
    expect((await h.registry.deps.devices.pendingOf(id))?.events ?? []).toEqual([]);
  }
  it('a PingSource tick flushes what an outage left behind, for a registry that nobody calls', async () => {
    const id = uniqueName('tick');
    sink.down = true;
    await register({ id, tags: ['outbox'] });
    expect((await h.registry.deps.devices.pendingOf(id))?.events).toHaveLength(1);
    // While the sink is down the tick fails (503: the Trigger retries it) and the event stays.
    const tick = () => {
      const ping = new CloudEvent({
        id: uniqueName('ping'),
        source: '/apis/v1/namespaces/kiot/pingsources/device-registry-outbox',
        type: 'dev.knative.sources.ping',
        kiottask: 'registryoutbox',
        datacontenttype: 'application/json',
        data: { task: 'registry-outbox' },
      });
      const message = toBinaryMessage(ping);
      return fetch(h.base, { method: 'POST', headers: message.headers, body: message.body });
    };
    await sleep(150); // older than OUTBOX_STALE_MS
    expect((await tick()).status).toBe(503);
    expect((await h.registry.deps.devices.pendingOf(id))?.events).toHaveLength(1);

    sink.down = false;
    sink.accepted = [];
    expect((await tick()).status).toBe(204);
    // Flushed by the tick itself, before it answered: no other request was made.
    expect(acceptedFor(id).map((event) => event.type)).toEqual(['io.kiot.device.registered']);
    expect((await h.registry.deps.devices.pendingOf(id))?.events ?? []).toHaveLength(0);
  });
  it('announces a bulk registration in batch events, one per 250 devices, and keeps nothing pending', async () => {
    const prefix = uniqueName('batch');
    const ids = Array.from({ length: 3 }, (_, i) => `${prefix}-${i}`);
    const bulk = await h.api('/devices/bulk', { body: { devices: ids.map((id) => ({ id, tags: ['batch'] })) } });
    expect(bulk.status).toBe(200);
    const batches = sink.accepted.filter((event) => event.type === 'io.kiot.device.registered.batch');
    expect(batches).toHaveLength(1);
    const items = batches[0]!.data as { id: string; subject: string; data: { id: string; tags: string[] } }[];
    expect(items.map((item) => [item.subject, item.data.id, item.data.tags])).toEqual(
      ids.map((id) => [id, id, ['batch']]),
    );
    expect(sink.accepted.filter((event) => ids.includes(event.subject ?? ''))).toHaveLength(0);
    for (const id of ids) expect((await h.registry.deps.devices.pendingOf(id))?.events).toEqual([]);
  });

  it('with a broker that asks the registry (hooks), a bulk call writes each device synced with its event once', async () => {
    const hooks = await startHarness({
      broker: h.broker,
      env: { BROKER_ACCESS: 'hooks', OUTBOX_STALE_MS: '100', OUTBOX_FLUSH_INTERVAL_MS: '0' },
    });
    const received: CloudEvent<unknown>[] = [];
    hooks.sink.respond = (request: ReceivedRequest) => {
      if (request.event) received.push(request.event);
      return { status: 202 };
    };
    try {
      const prefix = uniqueName('hooks');
      const devices = Array.from({ length: 300 }, (_, i) => ({ id: `${prefix}-${i}`, type: 'thermo' }));
      const bulk = await hooks.api('/devices/bulk', { body: { devices } });
      expect(bulk.status).toBe(200);
      const { results } = (await bulk.json()) as { results: { id: string; status: string; secret: string }[] };
      expect(results.every((result) => result.status === 'created')).toBe(true);
      // Sent side by side: in whichever order they arrive.
      expect(received.map((event) => [event.type, (event.data as unknown[]).length]).sort()).toEqual([
        ['io.kiot.device.registered.batch', 250],
        ['io.kiot.device.registered.batch', 50],
      ]);
      const own = createMongo(MONGODB_URL, hooks.dbName);
      const stored = await (await own.db())
        .collection('devices')
        .find({ _id: { $in: devices.map((d) => d.id) } as never })
        .toArray();
      await own.close();
      expect(stored).toHaveLength(300);
      expect(stored.filter((doc) => doc.brokerSynced !== true || (doc.pendingEvents ?? []).length > 0)).toEqual([]);
      // The stored hash is the broker's credential: the authn hook admits the secret the call returned.
      const authn = await hooks.api('/broker/authn', {
        key: hooks.keys.hooks,
        body: { clientid: results[7]!.id, username: results[7]!.id, password: results[7]!.secret },
      });
      expect(((await authn.json()) as { result: string }).result).toBe('allow');
    } finally {
      await hooks.close();
    }
  });
});
