import { randomUUID } from 'node:crypto';
import { DEVICE_BATCH_MAX_ITEMS, deviceBatchId } from '../../shared/device-batch.js';
import { DEVICES_COLLECTION } from '../../shared/devices.js';
import type { Emitter } from '../../shared/emitter.js';
import { AppError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import type { PendingWork } from '../../shared/pending-work.js';

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
 * (at least once, never lost, never reordered per device).
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
 * still waits in a device document (a sink outage left it behind).
 */
export const outboxPendingWork = (staleMs: number): PendingWork => [
  { collection: DEVICES_COLLECTION, due: { field: 'pendingEvents.at', graceSeconds: Math.ceil(staleMs / 1000) } },
];

/** The events waiting in one device document, in the order they were written. */
export interface Pending {
  events: PendingEvent[];
  /** The document is a tombstone: it goes once its events are out. */
  tombstone: boolean;
}

/** What the outbox needs from the device documents (device-repository.ts implements it). */
export interface OutboxStore {
  pendingOf(id: string): Promise<Pending | undefined>;
  /** Ids of documents holding an event written before `before`, at most `limit`. */
  withEventsBefore(before: Date, limit: number): Promise<string[]>;
  /** `$pull`s one delivered event. */
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
  /** One bounded pass: devices with events older than `staleMs`, at most `limit`; stops when the sink fails. */
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

/** A bulk registration's devices, announced together (shared/device-batch.ts). */
export const DEVICE_REGISTERED_BATCH = 'io.kiot.device.registered.batch';

const rejectedBySink = (error: unknown) => error instanceof AppError && error.code === 'event_rejected_by_sink';

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
    for (const event of pending.events) {
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
      await store.settle(id, event.id);
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
    const ids = await store.withEventsBefore(new Date(now().getTime() - options.staleMs), options.limit);
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
    const chunks: { id: string; event: PendingEvent }[][] = [];
    for (let start = 0; start < fresh.length; start += DEVICE_BATCH_MAX_ITEMS)
      chunks.push(fresh.slice(start, start + DEVICE_BATCH_MAX_ITEMS));
    // The batches of one call side by side: they hold different devices, so no device's events can overtake each
    // other, and a sink that journals before it accepts (the local router, a Broker) syncs them together.
    const outcomes = await Promise.allSettled(chunks.map(emitBatch));
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

  /** True once the sink took the batch; false when it refused it for good (its devices stay for the flush). */
  async function emitBatch(chunk: { id: string; event: PendingEvent }[]): Promise<boolean> {
    const items = chunk.map(({ event }) => ({
      id: event.id,
      subject: event.subject,
      time: event.at.toISOString(),
      data: event.data,
    }));
    try {
      await emitter.emit({ type: DEVICE_REGISTERED_BATCH, id: deviceBatchId(items), data: items });
      return true;
    } catch (error) {
      // Refused as a whole (a 4xx): its devices stay pending, and the flush announces each on its own.
      if (!rejectedBySink(error)) throw error;
      logger.error({ err: error }, 'batch of registrations refused by the sink');
      return false;
    }
  }

  return {
    deliver,
    deliverFresh,
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
