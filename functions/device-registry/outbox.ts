import { randomUUID } from 'node:crypto';
import { DEVICES_COLLECTION } from '../../shared/devices.js';
import type { Emitter } from '../../shared/emitter.js';
import type { Logger } from '../../shared/logger.js';
import type { PendingWork } from '../../shared/pending-work.js';
import {
  chunked,
  deliverBatches,
  emitBatch,
  openBatches,
  REGISTRATION_BATCHES_COLLECTION,
  type Registration,
  type RegistrationBatchStore,
  rejectedBySink,
} from './registration-batches.js';

/**
 * A single-document outbox for `io.kiot.device.*` events (MongoDB without transactions).
 *
 * The write that changes a device document also `$push`es the event(s) it causes into that document's
 * `pendingEvents` array, so the change and the duty to announce it are one atomic write: there is no moment
 * when one is durable and the other is not. A delete turns the document into a tombstone
 * (`{_id, status:'deleted', deletedAt, pendingEvents}`) in that one write, and every registry read treats a
 * tombstone as absent. Then each pending event is emitted with the id stored in its entry and `$pull`ed once
 * the sink took it (and an emptied tombstone is removed). A crash or a sink outage between the two leaves
 * the entry in place: a flush re-emits it with the same id, which consumers drop if they saw it already
 * (at least once, never lost, never reordered per device). A bulk registration's `registered` events are owned
 * by batch records instead (registration-batches.ts): one write per 250 devices, not one settle per device.
 */
export interface PendingEvent {
  /** The CloudEvent id, a uuid fixed when the change is written: a re-emit is a duplicate to drop. */
  id: string;
  type: string;
  subject: string;
  /** When the change was written: the event `time`, and what staleness is measured from. */
  at: Date;
  data: unknown;
}

export function pendingEvent(type: string, subject: string, data: unknown, at: Date): PendingEvent {
  return { id: randomUUID(), type, subject, at, data };
}

/**
 * What the outbox tick has to do, as the tick gate checks it before the tick may wake device-registry
 * (knative/device-registry/ping-source-outbox.yaml carries it; a test compares): an event older than `staleMs`
 * still waits in a device document, or a bulk registration's batch record older than that was left behind.
 */
export const outboxPendingWork = (staleMs: number): PendingWork => [
  { collection: DEVICES_COLLECTION, due: { field: 'pendingEvents.at', graceSeconds: Math.ceil(staleMs / 1000) } },
  { collection: REGISTRATION_BATCHES_COLLECTION, due: { field: 'at', graceSeconds: Math.ceil(staleMs / 1000) } },
];

/** The events waiting in one device document, in the order they were written. */
export interface Pending {
  events: PendingEvent[];
  /** The document is a tombstone: it goes once its events are out. */
  tombstone: boolean;
  /** A bulk registration's event, owed ahead of `events` while its batch record exists (registration-batches.ts). */
  registration?: Registration | undefined;
}

/** What the outbox needs from the device documents (device-repository.ts implements it). */
export interface OutboxStore {
  pendingOf(id: string): Promise<Pending | undefined>;
  /** Ids of documents holding an event written before `before`, at most `limit`. */
  withEventsBefore(before: Date, limit: number): Promise<string[]>;
  /** `$pull`s one delivered event (and drops `registeredIn`: every event before it is out). */
  settle(id: string, eventId: string): Promise<void>;
  /** `$pull`s delivered events of many documents in one round trip. */
  settleMany(delivered: { id: string; eventId: string }[]): Promise<void>;
  /** Removes the tombstone `id` if it holds no event any more. */
  dropSettledTombstone(id: string): Promise<void>;
}

export interface Outbox {
  /**
   * Emits the pending events of one device in order, removing each once the sink accepted it; stops at the
   * first that fails (it and those after it stay for a flush) and throws that failure. `known` saves the
   * read when the caller holds the document as its write left it.
   */
  deliver(id: string, known?: Pending): Promise<void>;
  /**
   * The one `registered` event each of many new documents owes (a bulk registration): emitted as
   * `io.kiot.device.registered.batch` events of up to `DEVICE_BATCH_MAX_ITEMS` (shared/device-batch.ts), sent side
   * by side, then the accepted ones settled in one write. Throws the first sink failure after that; what was not
   * settled stays for a flush, which emits those devices' events one by one with the same ids.
   */
  deliverFresh(fresh: { id: string; event: PendingEvent }[]): Promise<void>;
  /** Writes the batch records of a bulk call about to insert `fresh` (registration-batches.ts): each one's `registeredIn`. */
  openBatches(fresh: { id: string; event: PendingEvent }[], at: Date): Promise<Registration[]>;
  /** Emits the batch events of the devices inserted and deletes their records; throws the first sink failure. */
  deliverBatches(batches: string[], inserted: { id: string; registration: Registration }[]): Promise<void>;
  /**
   * One bounded pass: batch records older than `staleMs` (their devices one by one), then devices with events
   * older than that, at most `limit` of each; stops when the sink fails.
   */
  flush(): Promise<FlushResult>;
  /**
   * Starts a flush in the background unless one runs or ran within `intervalMs` (called on every request),
   * and the local timer with the first call.
   */
  kick(): void;
  /** Waits for a running flush and stops the timer. */
  close(): Promise<void>;
}

export interface FlushResult {
  devices: number;
  delivered: number;
  failed: boolean;
}

export interface OutboxOptions {
  store: OutboxStore;
  batches: RegistrationBatchStore;
  emitter: Emitter;
  logger: Logger;
  now?: () => Date;
  /** Events younger than this are left to the request that wrote them. */
  staleMs: number;
  /** Devices per flush. */
  limit: number;
  /** Flush period of the local timer, and the least gap between flushes started by requests; 0: no timer. */
  intervalMs: number;
}

export function createOutbox(options: OutboxOptions): Outbox {
  const now = options.now ?? (() => new Date());
  const { store, emitter, logger } = options;
  // One delivery per device at a time in this process, so that a flush and a request never emit the same
  // entry twice here (another instance may: that is a duplicate with the same id, which consumers drop).
  const chains = new Map<string, Promise<void>>();
  let running: Promise<FlushResult> | undefined;
  let lastStarted = 0;

  async function deliverNow(id: string, known: Pending | undefined): Promise<void> {
    const pending = known ?? (await store.pendingOf(id));
    if (!pending) return;
    const events = [...pending.events];
    // Its bulk registration not announced yet: that event comes first (the settle of the next one drops it).
    if (pending.registration && (await options.batches.isOpen(pending.registration.batch)))
      events.unshift(pending.registration.event);
    for (const event of events) {
      try {
        await emitter.emit({
          type: event.type,
          subject: event.subject,
          id: event.id,
          time: event.at.toISOString(),
          data: event.data,
        });
      } catch (error) {
        if (!rejectedBySink(error)) throw error;
        // 4xx from the Broker: this event can never be accepted, and keeping it would block every later event
        // of the device. Logged whole at error level (never silently) and settled.
        logger.error({ err: error, event }, 'event refused by the sink for good; dropped from the outbox');
      }
      if (event !== pending.registration?.event) await store.settle(id, event.id);
    }
    if (pending.tombstone) await store.dropSettledTombstone(id);
  }

  function deliver(id: string, known?: Pending): Promise<void> {
    const previous = chains.get(id);
    // Behind another delivery of the same device, re-read: what `known` lists may be settled by then.
    const run = previous
      ? previous.catch(() => undefined).then(() => deliverNow(id, undefined))
      : deliverNow(id, known);
    const tail = run
      .catch(() => undefined)
      .finally(() => {
        if (chains.get(id) === tail) chains.delete(id);
      });
    chains.set(id, tail);
    return run;
  }

  async function flushOnce(): Promise<FlushResult> {
    const result: FlushResult = { devices: 0, delivered: 0, failed: false };
    const before = new Date(now().getTime() - options.staleMs);
    // Batch records first: a device of one that also has events of its own gets its registration out before them.
    for (const record of await options.batches.before(before, options.limit)) {
      try {
        for (const id of await options.batches.devicesOf(record)) {
          result.devices += 1;
          await deliver(id);
          result.delivered += 1;
        }
        await options.batches.close([record._id]);
      } catch (error) {
        logger.warn({ err: error, batch: record._id }, 'outbox flush stopped; the batch stays for the next one');
        result.failed = true;
        break;
      }
    }
    const ids = result.failed ? [] : await store.withEventsBefore(before, options.limit);
    for (const id of ids) {
      result.devices += 1;
      try {
        await deliver(id);
        result.delivered += 1;
      } catch (error) {
        // The sink (or MongoDB) is down: the rest would fail the same way, so this pass ends here.
        logger.warn({ err: error, subject: id }, 'outbox flush stopped; pending events stay for the next one');
        result.failed = true;
        break;
      }
    }
    if (result.devices > 0) logger.info({ outbox: result }, 'outbox flushed');
    return result;
  }

  function flush(): Promise<FlushResult> {
    if (running) return running;
    lastStarted = Date.now();
    running = flushOnce().finally(() => {
      running = undefined;
    });
    return running;
  }

  // Started by the first request, not at build time: nothing connects before the first request.
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  function startTimer(): void {
    if (timer || closed || options.intervalMs <= 0) return;
    timer = setInterval(() => {
      flush().catch((error: unknown) => logger.warn({ err: error }, 'outbox flush failed'));
    }, options.intervalMs);
    // A local timer must not keep a process alive (tests, the functions framework's own shutdown).
    timer.unref();
  }

  async function deliverFresh(fresh: { id: string; event: PendingEvent }[]): Promise<void> {
    const chunks = chunked(fresh);
    // The batches of one call side by side: they hold different devices, so no device's events can overtake each
    // other, and a sink that journals before it accepts (the local router, a Broker) syncs them together.
    const outcomes = await Promise.allSettled(chunks.map((chunk) => emitBatch(emitter, logger, chunk)));
    const delivered: { id: string; eventId: string }[] = [];
    let failure: unknown;
    outcomes.forEach((outcome, i) => {
      if (outcome.status === 'fulfilled') {
        if (outcome.value) for (const { id, event } of chunks[i]!) delivered.push({ id, eventId: event.id });
      } else failure ??= outcome.reason;
    });
    await store.settleMany(delivered);
    if (failure !== undefined) throw failure;
  }

  return {
    deliver,
    deliverFresh,
    openBatches: (fresh, at) => openBatches(options.batches, fresh, at),
    deliverBatches: (batches, inserted) =>
      deliverBatches({ store: options.batches, emitter, logger }, batches, inserted),
    flush,
    kick() {
      startTimer();
      if (running || Date.now() - lastStarted < (options.intervalMs > 0 ? options.intervalMs : options.staleMs)) return;
      flush().catch((error: unknown) => logger.warn({ err: error }, 'outbox flush failed'));
    },
    async close() {
      closed = true;
      if (timer) clearInterval(timer);
      await running?.catch(() => undefined);
      await Promise.allSettled([...chains.values()]);
    },
  };
}
