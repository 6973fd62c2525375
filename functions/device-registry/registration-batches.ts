import { randomUUID } from 'node:crypto';
import type { Collection } from 'mongodb';
import { DEVICE_BATCH_MAX_ITEMS, deviceBatchId } from '../../shared/device-batch.js';
import { DEVICES_COLLECTION } from '../../shared/devices.js';
import type { Emitter } from '../../shared/emitter.js';
import { AppError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import { type MongoHandle, withMongo } from '../../shared/mongo.js';
import type { PendingEvent } from './outbox.js';

/**
 * The outbox of a bulk registration, owned by one small record per batch event instead of each device document.
 *
 * A device's own outbox (`pendingEvents`, outbox.ts) costs a second write per device once the event is out (the
 * settle); for a bulk call on the dev profile's mongo-java-server that second write cost as much as the insert.
 * So a bulk call writes a batch record (`{_id, at, ids}`: the candidate ids, up to `DEVICE_BATCH_MAX_ITEMS`)
 * before the insert, inserts each device with its `registered` event in `registeredIn` (outside `pendingEvents`,
 * so the device flush and its tick-gate query are unchanged), emits the batch event and deletes the one record.
 * While a record exists its devices still owe that event: a later delivery of such a device emits it first
 * (per-device order), and the flush announces a record left behind (a crash or a sink outage between insert and
 * emit) device by device — only those whose document carries that record's id, i.e. that this call inserted.
 */
export const REGISTRATION_BATCHES_COLLECTION = 'device_registration_batches';

/** Stored in a device document as `registeredIn`: its `registered` event, owed while batch record `batch` exists. */
export interface Registration {
  batch: string;
  event: PendingEvent;
}

export interface BatchRecord {
  _id: string;
  /** When the call wrote it: the flush and the tick gate leave younger records to the call. */
  at: Date;
  /** The devices the call tried to insert; only those whose `registeredIn.batch` is this record's id were. */
  ids: string[];
}

export interface RegistrationBatchStore {
  open(records: BatchRecord[]): Promise<void>;
  isOpen(batch: string): Promise<boolean>;
  before(before: Date, limit: number): Promise<BatchRecord[]>;
  /** Ids of the record's devices this call inserted (devices or tombstones still carrying the record's id). */
  devicesOf(record: BatchRecord): Promise<string[]>;
  close(batches: string[]): Promise<void>;
  ensureIndexes(): Promise<void>;
}

export function createRegistrationBatchStore(mongo: MongoHandle): RegistrationBatchStore {
  const records = async (): Promise<Collection<BatchRecord>> =>
    (await mongo.db()).collection<BatchRecord>(REGISTRATION_BATCHES_COLLECTION);
  return {
    open: (docs) =>
      withMongo(async () => {
        if (docs.length > 0) await (await records()).insertMany(docs);
      }),
    isOpen: (batch) =>
      withMongo(async () => (await (await records()).findOne({ _id: batch }, { projection: { _id: 1 } })) !== null),
    before: (before, limit) =>
      withMongo(async () =>
        (await records())
          .find({ at: { $lt: before } })
          .limit(limit)
          .toArray(),
      ),
    devicesOf: (record) =>
      withMongo(async () => {
        // Only after a crash or an outage: an `$in` that mongo-java-server scans is fine here.
        const docs = await (await mongo.db())
          .collection<{ _id: string }>(DEVICES_COLLECTION)
          .find({ _id: { $in: record.ids }, 'registeredIn.batch': record._id }, { projection: { _id: 1 } })
          .toArray();
        const inserted = new Set(docs.map((doc) => doc._id));
        return record.ids.filter((id) => inserted.has(id));
      }),
    close: (batches) =>
      withMongo(async () => {
        if (batches.length === 0) return;
        // One delete per record by _id (mongo-java-server scans an `$in`; there are at most 4 per call).
        await (await records()).bulkWrite(
          batches.map((_id) => ({ deleteOne: { filter: { _id } } })),
          {
            ordered: false,
          },
        );
      }),
    ensureIndexes: () =>
      withMongo(async () => {
        await (await records()).createIndex({ at: 1 }, { name: 'outbox_batches_at' });
      }),
  };
}

/** A bulk registration's devices, announced together (shared/device-batch.ts). */
export const DEVICE_REGISTERED_BATCH = 'io.kiot.device.registered.batch';

export const rejectedBySink = (error: unknown) => error instanceof AppError && error.code === 'event_rejected_by_sink';

export function chunked<T>(items: T[]): T[][] {
  const chunks: T[][] = [];
  for (let start = 0; start < items.length; start += DEVICE_BATCH_MAX_ITEMS)
    chunks.push(items.slice(start, start + DEVICE_BATCH_MAX_ITEMS));
  return chunks;
}

/** True once the sink took the batch; false when it refused it for good (its devices stay for the flush). */
export async function emitBatch(
  emitter: Emitter,
  logger: Logger,
  chunk: { id: string; event: PendingEvent }[],
): Promise<boolean> {
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

/** Writes one record per `DEVICE_BATCH_MAX_ITEMS` devices; each device's `registeredIn`, in the order given. */
export async function openBatches(
  store: RegistrationBatchStore,
  fresh: { id: string; event: PendingEvent }[],
  at: Date,
): Promise<Registration[]> {
  const records: BatchRecord[] = [];
  const registrations: Registration[] = [];
  for (const chunk of chunked(fresh)) {
    const record = { _id: randomUUID(), at, ids: chunk.map(({ id }) => id) };
    records.push(record);
    for (const { event } of chunk) registrations.push({ batch: record._id, event });
  }
  await store.open(records);
  return registrations;
}

/**
 * Emits the batch events of the devices a call inserted, side by side (different devices: none can overtake
 * another's events), and deletes the records whose event the sink took or that hold no inserted device. A record
 * whose event failed or was refused stays for the flush; the first failure is thrown after the deletes.
 */
export async function deliverBatches(
  deps: { store: RegistrationBatchStore; emitter: Emitter; logger: Logger },
  batches: string[],
  inserted: { id: string; registration: Registration }[],
): Promise<void> {
  const byBatch = new Map<string, { id: string; event: PendingEvent }[]>(batches.map((batch) => [batch, []]));
  for (const { id, registration } of inserted) byBatch.get(registration.batch)?.push({ id, event: registration.event });
  const entries = [...byBatch];
  const outcomes = await Promise.allSettled(
    entries.map(([, chunk]) => (chunk.length === 0 ? true : emitBatch(deps.emitter, deps.logger, chunk))),
  );
  const done: string[] = [];
  let failure: unknown;
  outcomes.forEach((outcome, i) => {
    if (outcome.status === 'rejected') failure ??= outcome.reason;
    else if (outcome.value) done.push(entries[i]![0]);
  });
  await deps.store.close(done);
  if (failure !== undefined) throw failure;
}
