import { describe, expect, it } from 'vitest';
import {
  createOutbox,
  type OutboxOptions,
  type OutboxStore,
  type PendingEvent,
  pendingEvent,
} from '../../../functions/device-registry/outbox.js';
import type { RegistrationBatchStore } from '../../../functions/device-registry/registration-batches.js';
import type { EmitInput, Emitter } from '../../../shared/emitter.js';
import { AppError, DependencyUnavailableError } from '../../../shared/errors.js';
import { createLogger } from '../../../shared/logger.js';

/** An in-memory store with the repository's semantics (pull by id, drop an emptied tombstone). */
function memoryStore(docs: Map<string, { events: PendingEvent[]; tombstone: boolean }>) {
  const calls: string[] = [];
  const store: OutboxStore = {
    async pendingOf(id) {
      const doc = docs.get(id);
      return doc && { events: [...doc.events], tombstone: doc.tombstone };
    },
    async withEventsBefore(before, limit) {
      calls.push('scan');
      return [...docs.entries()]
        .filter(([, doc]) => doc.events.some((event) => event.at < before))
        .slice(0, limit)
        .map(([id]) => id);
    },
    async settle(id, eventId) {
      const doc = docs.get(id);
      if (doc) doc.events = doc.events.filter((event) => event.id !== eventId);
    },
    async settleMany(delivered) {
      for (const { id, eventId } of delivered) await store.settle(id, eventId);
    },
    async dropSettledTombstone(id) {
      const doc = docs.get(id);
      if (doc?.tombstone && doc.events.length === 0) docs.delete(id);
    },
  };
  return { store, calls };
}

/** No bulk registration's batch record is open (registration-batches.ts has its own integration tests). */
const noBatches: RegistrationBatchStore = {
  open: async () => undefined,
  isOpen: async () => false,
  before: async () => [],
  devicesOf: async () => [],
  close: async () => undefined,
  ensureIndexes: async () => undefined,
};

const outboxOf = (options: Omit<OutboxOptions, 'batches'>) => createOutbox({ batches: noBatches, ...options });

function recordingEmitter(answer: (input: EmitInput) => 'ok' | 'down' | 'refused' = () => 'ok') {
  const emitted: EmitInput[] = [];
  const emitter: Emitter = {
    async emit(input) {
      await new Promise((resolve) => setTimeout(resolve, 1));
      const verdict = answer(input);
      if (verdict === 'down') throw new DependencyUnavailableError('event sink', new Error('503'));
      if (verdict === 'refused') throw new AppError(500, 'event_rejected_by_sink', 'refused with 400');
      emitted.push(input);
      return undefined as never;
    },
  };
  return { emitter, emitted };
}

const logger = createLogger('test', 'silent');
const old = new Date(Date.now() - 60_000);
const event = (subject: string, type = 'io.kiot.device.updated') => pendingEvent(type, subject, { id: subject }, old);

describe('device-registry outbox', () => {
  it("emits a device's events in order with their stored ids and time, settling each, and drops an emptied tombstone", async () => {
    const events = [event('d1', 'io.kiot.device.updated'), event('d1', 'io.kiot.device.deleted')];
    const docs = new Map([['d1', { events: [...events], tombstone: true }]]);
    const { emitter, emitted } = recordingEmitter();
    const outbox = outboxOf({
      store: memoryStore(docs).store,
      emitter,
      logger,
      staleMs: 1_000,
      limit: 10,
      intervalMs: 0,
    });
    await outbox.deliver('d1');
    expect(emitted.map((e) => [e.id, e.type, e.subject, e.time])).toEqual(
      events.map((e) => [e.id, e.type, 'd1', old.toISOString()]),
    );
    expect(docs.has('d1')).toBe(false);
  });

  it('stops at the first event the sink does not take; it and the later ones stay, in order', async () => {
    const events = [event('d1'), event('d1'), event('d1')];
    const docs = new Map([['d1', { events: [...events], tombstone: false }]]);
    let calls = 0;
    const { emitter, emitted } = recordingEmitter(() => (++calls === 2 ? 'down' : 'ok'));
    const outbox = outboxOf({
      store: memoryStore(docs).store,
      emitter,
      logger,
      staleMs: 1_000,
      limit: 10,
      intervalMs: 0,
    });
    await expect(outbox.deliver('d1')).rejects.toBeInstanceOf(DependencyUnavailableError);
    expect(emitted.map((e) => e.id)).toEqual([events[0]!.id]);
    expect(docs.get('d1')!.events.map((e) => e.id)).toEqual([events[1]!.id, events[2]!.id]);
    await outbox.deliver('d1');
    expect(emitted.map((e) => e.id)).toEqual(events.map((e) => e.id));
  });

  it('settles an event the sink refuses for good (4xx) instead of blocking the device behind it', async () => {
    const events = [event('d1'), event('d1')];
    const docs = new Map([['d1', { events: [...events], tombstone: false }]]);
    const { emitter, emitted } = recordingEmitter((input) => (input.id === events[0]!.id ? 'refused' : 'ok'));
    const outbox = outboxOf({
      store: memoryStore(docs).store,
      emitter,
      logger,
      staleMs: 1_000,
      limit: 10,
      intervalMs: 0,
    });
    await outbox.deliver('d1');
    expect(emitted.map((e) => e.id)).toEqual([events[1]!.id]);
    expect(docs.get('d1')!.events).toEqual([]);
  });

  it('never emits one entry twice in a process when a request and a flush deliver the same device together', async () => {
    const events = [event('d1'), event('d1')];
    const docs = new Map([['d1', { events: [...events], tombstone: false }]]);
    const { emitter, emitted } = recordingEmitter();
    const outbox = outboxOf({
      store: memoryStore(docs).store,
      emitter,
      logger,
      staleMs: 1_000,
      limit: 10,
      intervalMs: 0,
    });
    await Promise.all([
      outbox.deliver('d1', { events: [...events], tombstone: false }),
      outbox.flush(),
      outbox.deliver('d1'),
    ]);
    expect(emitted.map((e) => e.id)).toEqual(events.map((e) => e.id));
  });

  it('flushes only stale events, at most `limit` devices, and ends the pass when the sink is down', async () => {
    const docs = new Map([
      ['a', { events: [event('a')], tombstone: false }],
      ['b', { events: [event('b')], tombstone: false }],
      ['c', { events: [event('c')], tombstone: false }],
      ['fresh', { events: [pendingEvent('t', 'fresh', {}, new Date())], tombstone: false }],
    ]);
    let down = true;
    const { emitter, emitted } = recordingEmitter(() => (down ? 'down' : 'ok'));
    const outbox = outboxOf({
      store: memoryStore(docs).store,
      emitter,
      logger,
      staleMs: 5_000,
      limit: 2,
      intervalMs: 0,
    });
    expect(await outbox.flush()).toEqual({ devices: 1, delivered: 0, failed: true });
    down = false;
    expect(await outbox.flush()).toEqual({ devices: 2, delivered: 2, failed: false });
    expect(await outbox.flush()).toEqual({ devices: 1, delivered: 1, failed: false });
    expect(await outbox.flush()).toEqual({ devices: 0, delivered: 0, failed: false });
    expect(emitted.map((e) => e.subject).sort()).toEqual(['a', 'b', 'c']);
    expect(docs.get('fresh')!.events).toHaveLength(1);
  });

  it('starts its timer with the first request, not before, and stops it on close', async () => {
    const docs = new Map([['a', { events: [event('a')], tombstone: false }]]);
    const { store, calls } = memoryStore(docs);
    const { emitter, emitted } = recordingEmitter();
    const outbox = outboxOf({
      store,
      emitter,
      logger,
      staleMs: 0,
      limit: 10,
      intervalMs: 10,
    });
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(calls).toEqual([]);
    outbox.kick();
    for (let i = 0; i < 200 && calls.length < 3; i += 1) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(calls.length).toBeGreaterThanOrEqual(3);
    expect(emitted.map((e) => e.subject)).toEqual(['a']);
    await outbox.close();
  });

  it('announces fresh documents in batch events of 250 side by side and settles the accepted ones in one write; a batch the sink failed stays pending', async () => {
    const fresh = Array.from({ length: 600 }, (_, i) => `f${i}`).map((id) => ({
      id,
      event: event(id, 'io.kiot.device.registered'),
    }));
    const docs = new Map(fresh.map(({ id, event: e }) => [id, { events: [e], tombstone: false }]));
    const { store } = memoryStore(docs);
    let batches = 0;
    const { emitter, emitted } = recordingEmitter(() => (++batches === 2 ? 'down' : 'ok'));
    const outbox = outboxOf({
      store,
      emitter,
      logger,
      staleMs: 5_000,
      limit: 10,
      intervalMs: 0,
    });
    await expect(outbox.deliverFresh(fresh)).rejects.toThrow();
    expect(emitted.map((e) => e.type)).toEqual(['io.kiot.device.registered.batch', 'io.kiot.device.registered.batch']);
    const items = emitted[0]!.data as { id: string; subject: string; time: string }[];
    expect(items.map((item) => [item.subject, item.id])).toEqual(fresh.slice(0, 250).map((f) => [f.id, f.event.id]));
    expect(items[0]!.time).toBe(old.toISOString());
    expect((emitted[1]!.data as { subject: string }[]).map((item) => item.subject)).toEqual(
      fresh.slice(500).map((f) => f.id),
    );
    // Only the second batch (the sink was down for it) is left for the flush.
    const pending = [...docs.entries()].filter(([, doc]) => doc.events.length > 0).map(([id]) => id);
    expect(pending).toEqual(fresh.slice(250, 500).map((f) => f.id));
    // The same items make the same batch id: a retried bulk announcement is a duplicate to drop.
    const again = recordingEmitter();
    const retry = outboxOf({
      ...{ store, logger, staleMs: 5_000, limit: 10, intervalMs: 0 },
      emitter: again.emitter,
    });
    await retry.deliverFresh(fresh.slice(0, 250));
    expect(again.emitted[0]!.id).toBe(emitted[0]!.id);
  });

  it('a batch the sink refuses for good leaves its devices for the flush, which announces each on its own', async () => {
    const fresh = Array.from({ length: 300 }, (_, i) => `r${i}`).map((id) => ({
      id,
      event: event(id, 'io.kiot.device.registered'),
    }));
    const docs = new Map(fresh.map(({ id, event: e }) => [id, { events: [e], tombstone: false }]));
    const { store } = memoryStore(docs);
    const { emitter, emitted } = recordingEmitter((input) =>
      input.type === 'io.kiot.device.registered.batch' && (input.data as unknown[]).length === 250 ? 'refused' : 'ok',
    );
    const outbox = outboxOf({
      store,
      emitter,
      logger,
      staleMs: 5_000,
      limit: 1_000,
      intervalMs: 0,
    });
    await outbox.deliverFresh(fresh);
    expect(emitted.map((e) => (e.data as unknown[]).length)).toEqual([50]);
    expect([...docs.values()].filter((doc) => doc.events.length > 0)).toHaveLength(250);
    await outbox.flush();
    expect(emitted.filter((e) => e.type === 'io.kiot.device.registered').map((e) => e.subject)).toEqual(
      fresh.slice(0, 250).map((f) => f.id),
    );
    expect([...docs.values()].filter((doc) => doc.events.length > 0)).toHaveLength(0);
  });
});
