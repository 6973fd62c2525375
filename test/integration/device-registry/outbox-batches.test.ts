import { beforeAll, describe, expect, it } from 'vitest';
import { outboxPendingWork } from '../../../functions/device-registry/outbox.js';
import { REGISTRATION_BATCHES_COLLECTION } from '../../../functions/device-registry/registration-batches.js';
import type { MongoHandle } from '../../../shared/mongo.js';
import { hasPendingWork } from '../../../shared/pending-work.js';
import { uniqueName } from '../../support/services.js';
import type { Harness } from './harness.js';
import { useOutboxSuite } from './outbox-harness.js';

// A bulk registration's `registered` events owned by batch records (registration-batches.ts), with a broker that
// asks the registry (hooks: the path that writes them). The sink fails between the insert and the emit, which is
// what a crash there leaves behind: the records and the inserted devices, nothing announced.
describe('device-registry bulk registration outbox (batch records)', () => {
  const STALE_MS = 100;
  const suite = useOutboxSuite({
    BROKER_ACCESS: 'hooks',
    OUTBOX_STALE_MS: String(STALE_MS),
    OUTBOX_FLUSH_INTERVAL_MS: '0',
  });
  const { sink } = suite;
  let h: Harness;
  let mongo: MongoHandle;
  beforeAll(() => {
    h = suite.harness();
    mongo = suite.mongo();
  });

  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  const records = async () => (await mongo.db()).collection(REGISTRATION_BATCHES_COLLECTION);
  /** What each device was announced with, single events and batch items alike, in the order accepted. */
  const announced = () =>
    sink.accepted.flatMap((event) =>
      event.type === 'io.kiot.device.registered.batch'
        ? (event.data as { id: string; subject: string }[]).map((item) => ({
            id: item.id,
            subject: item.subject,
            type: 'io.kiot.device.registered',
          }))
        : [{ id: event.id, subject: event.subject ?? '', type: event.type }],
    );
  /**
   * One device's announcements as a consumer keeps them: in the order accepted, a repeated id dropped (a request's
   * delivery and a flush started by another request may both send an entry; consumers drop the second).
   */
  const sequenceOf = (subject: string) => {
    const seen = new Set<string>();
    return announced()
      .filter((item) => item.subject === subject && !seen.has(item.id) && seen.add(item.id))
      .map((item) => item.type);
  };
  const bulk = async (devices: unknown[]) => {
    const response = await h.api('/devices/bulk', { body: { devices } });
    expect(response.status).toBe(200);
    return (await response.json()) as { results: { id?: string; status: string }[] };
  };
  const registeredIn = async (id: string) =>
    (
      (await (await mongo.db()).collection('devices').findOne({ _id: id as never })) as {
        registeredIn?: { batch: string; event: { id: string } };
      } | null
    )?.registeredIn;

  it('after a failure between insert and emit, the flush announces every inserted device once and nothing refused', async () => {
    const prefix = uniqueName('crash');
    const existing = `${prefix}-taken`;
    await bulk([{ id: existing }]);
    const existingEvent = announced().find((item) => item.subject === existing)!;
    expect(existingEvent).toBeDefined();
    expect(await (await records()).countDocuments({})).toBe(0);

    sink.down = true;
    sink.accepted = [];
    const ids = Array.from({ length: 300 }, (_, i) => `${prefix}-${i}`);
    const { results } = await bulk([...ids.map((id) => ({ id })), { id: existing }, { id: 'not valid!' }]);
    expect(results.filter((result) => result.status === 'created')).toHaveLength(300);
    expect(results[300]).toMatchObject({ status: 'conflict', id: existing });
    expect(results[301]).toMatchObject({ status: 'invalid' });
    // Two records (250 + 51 candidates) wait; the inserted devices hold nothing in their own outbox.
    expect(await (await records()).countDocuments({})).toBe(2);
    const owed = new Map<string, string>();
    for (const id of ids) {
      const registration = await registeredIn(id);
      expect(registration).toBeDefined();
      owed.set(id, registration!.event.id);
      expect((await h.registry.deps.devices.pendingOf(id))?.events).toEqual([]);
    }
    // The refused item's document is the earlier device's, untouched.
    expect(await registeredIn(existing)).toMatchObject({ event: { id: existingEvent.id } });

    // The tick gate sees the records once they are older than the stale age (no device holds pendingEvents).
    const db = await mongo.db();
    const work = outboxPendingWork(STALE_MS);
    await sleep(STALE_MS + 1_100); // graceSeconds rounds up to whole seconds
    expect(await hasPendingWork(work, db, new Date())).toBe(true);

    // A flush while the sink is down announces nothing and keeps the records.
    expect((await h.registry.outbox.flush()).failed).toBe(true);
    expect(await (await records()).countDocuments({})).toBe(2);

    sink.down = false;
    sink.accepted = [];
    const result = await h.registry.outbox.flush();
    expect(result.failed).toBe(false);
    // Exactly as before the records: each inserted device on its own, with the id its document was written with.
    const items = announced();
    expect(items.map((item) => item.type).every((type) => type === 'io.kiot.device.registered')).toBe(true);
    expect(items.map((item) => item.subject).sort()).toEqual([...ids].sort());
    for (const item of items) expect(item.id).toBe(owed.get(item.subject));
    expect(await (await records()).countDocuments({})).toBe(0);
    expect(await hasPendingWork(work, db, new Date())).toBe(false);

    // Nothing goes out again.
    sink.accepted = [];
    await h.registry.outbox.flush();
    expect(sink.accepted).toEqual([]);
  });

  it('keeps per-device order when a device is deleted right after its bulk registration (not announced yet)', async () => {
    const prefix = uniqueName('order');
    const [first, second] = [`${prefix}-a`, `${prefix}-b`];
    sink.down = true;
    await bulk([{ id: first }, { id: second }]);
    expect(await (await records()).countDocuments({})).toBe(1);

    sink.down = false;
    sink.accepted = [];
    expect((await h.api(`/devices/${first}`, { method: 'DELETE' })).status).toBe(204);
    // The delete's delivery sent the registration it still owed first, then the deletion, and dropped the tombstone.
    expect(sequenceOf(first)).toEqual(['io.kiot.device.registered', 'io.kiot.device.deleted']);
    expect(await h.registry.deps.devices.pendingOf(first)).toBeUndefined();

    await sleep(STALE_MS + 50);
    await h.registry.outbox.flush();
    // The record's other device is announced by the flush; the deleted one is not announced again.
    expect(sequenceOf(first)).toEqual(['io.kiot.device.registered', 'io.kiot.device.deleted']);
    expect(sequenceOf(second)).toEqual(['io.kiot.device.registered']);
    expect(await (await records()).countDocuments({})).toBe(0);
  });

  it('keeps per-device order across an outage: registered, then deleted, from the flush', async () => {
    const id = uniqueName('outage');
    sink.down = true;
    await bulk([{ id }]);
    expect((await h.api(`/devices/${id}`, { method: 'DELETE' })).status).toBe(204);
    // The tombstone carries the registration still owed, ahead of its own deletion.
    expect(await h.registry.deps.devices.pendingOf(id)).toMatchObject({
      tombstone: true,
      registration: { event: { type: 'io.kiot.device.registered' } },
      events: [expect.objectContaining({ type: 'io.kiot.device.deleted' })],
    });

    sink.down = false;
    sink.accepted = [];
    await sleep(STALE_MS + 50);
    await h.registry.outbox.flush();
    expect(sequenceOf(id)).toEqual(['io.kiot.device.registered', 'io.kiot.device.deleted']);
    expect(await h.registry.deps.devices.pendingOf(id)).toBeUndefined();
    expect(await (await records()).countDocuments({})).toBe(0);
  });

  it('re-registers a deleted id that still owes its batched registration: registered, deleted, registered', async () => {
    const id = uniqueName('reclaim');
    sink.down = true;
    await bulk([{ id, name: 'first' }]);
    expect((await h.api(`/devices/${id}`, { method: 'DELETE' })).status).toBe(204);
    // The new registration claims the tombstone, which still owes the first registration and the deletion.
    const again = await h.api('/devices', { body: { id, name: 'second' } });
    expect(again.status).toBe(201);

    sink.down = false;
    sink.accepted = [];
    await sleep(STALE_MS + 50);
    await h.registry.outbox.flush();
    expect(sequenceOf(id)).toEqual([
      'io.kiot.device.registered',
      'io.kiot.device.deleted',
      'io.kiot.device.registered',
    ]);
    const registrations = announced().filter(
      (item) => item.subject === id && item.type === 'io.kiot.device.registered',
    );
    expect(new Set(registrations.map((item) => item.id)).size).toBe(2);
    expect((await h.registry.deps.devices.pendingOf(id))?.events ?? []).toEqual([]);
    expect(await (await records()).countDocuments({})).toBe(0);
    // Nothing goes out again.
    sink.accepted = [];
    await sleep(STALE_MS + 50);
    await h.registry.outbox.flush();
    expect(sequenceOf(id)).toEqual([]);
  });

  it('a bulk call with the sink up leaves no record and writes each device once', async () => {
    const prefix = uniqueName('up');
    const ids = Array.from({ length: 260 }, (_, i) => `${prefix}-${i}`);
    await bulk(ids.map((id) => ({ id })));
    expect(sink.accepted.map((event) => event.type)).toEqual([
      'io.kiot.device.registered.batch',
      'io.kiot.device.registered.batch',
    ]);
    expect(
      announced()
        .map((item) => item.subject)
        .sort(),
    ).toEqual([...ids].sort());
    expect(await (await records()).countDocuments({})).toBe(0);
    sink.accepted = [];
    await sleep(STALE_MS + 50);
    await h.registry.outbox.flush();
    expect(sink.accepted).toEqual([]);
  });
});
