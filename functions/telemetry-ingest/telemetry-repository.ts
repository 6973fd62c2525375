import type { Collection, Filter } from 'mongodb';
import type { Logger } from '../../shared/logger.js';
import type { MongoHandle } from '../../shared/mongo.js';
import { insertUnordered, withMongo } from '../../shared/mongo.js';
import { TELEMETRY_COLLECTION, type TelemetrySampleDocument } from '../../shared/telemetry.js';
import type { WriteOutcome } from './group-commit.js';

export { TELEMETRY_COLLECTION };

/** One raw sample as stored (shared/telemetry.ts is the contract with its readers). */
export type SampleDocument = TelemetrySampleDocument;

export interface SampleQuery {
  deviceId: string;
  from: Date;
  to: Date;
  metrics: string[];
  limit: number;
  after?: { ts: Date; id: string };
}

export interface TelemetryRepository {
  /**
   * Inserts a batch (unordered): failures by position, and the positions of the samples stored already (the
   * unique `_id`'s duplicate-key errors): they count as durable, and they are how a redelivery is told apart.
   */
  insertBatch(docs: SampleDocument[]): Promise<WriteOutcome>;
  /** Which of `ids` are stored (one query, `_id` only). */
  existing(ids: readonly string[]): Promise<Set<string>>;
  find(query: SampleQuery): Promise<SampleDocument[]>;
  deleteOlderThan(cutoff: Date): Promise<number>;
  ensureIndexes(retentionSeconds: number, logger: Logger): Promise<void>;
}

/**
 * Deterministic sample id. A device's own message id scoped by the sample's own time wins (a redelivery
 * carries the same `ts`; a device that restarted its counter after a reboot stamps new times, so its new
 * data is never taken for old), else event id and position. A msgId without a device `ts` names nothing.
 */
export function sampleId(deviceId: string, eventId: string, index: number, msgId?: string, deviceTs?: Date): string {
  return msgId === undefined || deviceTs === undefined
    ? `${eventId}#${index}`
    : `${deviceId}~${msgId}~${deviceTs.getTime()}`;
}

/**
 * An upper bound of a sample document's BSON size inside an insert command (shared/mongo.ts `insertUnordered`
 * splits by it): 256 bytes for the field names, types, lengths, dates and the array entry (~130 in fact), three
 * bytes for each UTF-16 unit of a string (UTF-8's most), each metric's name the same and 10 for its type, name
 * terminator and double.
 */
export function sampleDocumentBytes(doc: SampleDocument): number {
  let bytes = 256 + 3 * (doc._id.length + doc.deviceId.length + doc.eventId.length + (doc.msgId?.length ?? 0));
  for (const name in doc.metrics) bytes += 3 * name.length + 10;
  return bytes;
}

export function createTelemetryRepository(mongo: MongoHandle): TelemetryRepository {
  const collection = async (): Promise<Collection<SampleDocument>> =>
    (await mongo.db()).collection<SampleDocument>(TELEMETRY_COLLECTION);

  return {
    insertBatch: (docs) =>
      withMongo(async () => {
        const at = new Date();
        for (const doc of docs) doc.ingestedAt = at;
        // Unordered: one bad document does not stop the others. Any failure of the command as a whole (the server
        // out of reach, a write concern error: nothing attributable to single documents) throws: unacknowledged.
        const errors = await insertUnordered(await mongo.db(), TELEMETRY_COLLECTION, docs, sampleDocumentBytes);
        const failures = new Map<number, unknown>();
        for (const other of errors.others) failures.set(other.index, new Error(other.errmsg ?? 'write failed'));
        return { failures, existing: errors.duplicates };
      }),

    existing: (ids) =>
      withMongo(async () => {
        if (ids.length === 0) return new Set<string>();
        const found = await (await collection()).find({ _id: { $in: [...ids] } }, { projection: { _id: 1 } }).toArray();
        return new Set(found.map((doc) => doc._id));
      }),

    find: (query) =>
      withMongo(async () => {
        const filter: Filter<SampleDocument> = { deviceId: query.deviceId, ts: { $gte: query.from, $lt: query.to } };
        if (query.after) {
          filter.$or = [{ ts: { $gt: query.after.ts } }, { ts: query.after.ts, _id: { $gt: query.after.id } }];
        }
        if (query.metrics.length > 0)
          filter.$and = [{ $or: query.metrics.map((name) => ({ [`metrics.${name}`]: { $exists: true } })) }];
        const projection: Record<string, 1> = { _id: 1, ts: 1, msgId: 1 };
        if (query.metrics.length > 0) for (const name of query.metrics) projection[`metrics.${name}`] = 1;
        else projection.metrics = 1;
        return (await collection()).find(filter, { projection, sort: { ts: 1, _id: 1 }, limit: query.limit }).toArray();
      }),

    deleteOlderThan: (cutoff) =>
      withMongo(async () => (await (await collection()).deleteMany({ ts: { $lt: cutoff } })).deletedCount),

    async ensureIndexes(retentionSeconds, logger) {
      const samples = await collection();
      await withMongo(() => samples.createIndex({ deviceId: 1, ts: 1, _id: 1 }, { name: 'device_ts' }));
      try {
        // TTL monitor (MongoDB "TTL Indexes"); servers without one accept or refuse it: the sweep covers both.
        await samples.createIndex({ ts: 1 }, { name: 'ts_ttl', expireAfterSeconds: retentionSeconds });
      } catch (error) {
        logger.warn({ err: error }, 'TTL index not available; the retention sweep removes old samples');
      }
    },
  };
}
