import type { Collection, Filter } from 'mongodb';
import type { Logger } from '../../shared/logger.js';
import type { MongoHandle } from '../../shared/mongo.js';
import { unorderedInsertErrors, withMongo } from '../../shared/mongo.js';
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
export function sampleId(
  deviceId: string,
  eventId: string,
  index: number,
  named?: { msgId: string; deviceTs: Date },
): string {
  return named === undefined ? `${eventId}#${index}` : `${deviceId}~${named.msgId}~${named.deviceTs.getTime()}`;
}

export function createTelemetryRepository(mongo: MongoHandle): TelemetryRepository {
  const collection = async (): Promise<Collection<SampleDocument>> =>
    (await mongo.db()).collection<SampleDocument>(TELEMETRY_COLLECTION);

  return {
    insertBatch: (docs) =>
      withMongo(async () => {
        const failures = new Map<number, unknown>();
        const existing: number[] = [];
        const at = new Date();
        for (const doc of docs) doc.ingestedAt = at;
        try {
          // ordered:false: one bad document does not stop the others (MongoDB insert command, `ordered`).
          await (await collection()).insertMany(docs, { ordered: false });
        } catch (error) {
          const errors = unorderedInsertErrors(error);
          // Nothing attributable to single documents (a write concern error, say): the batch is unacknowledged.
          if (!errors?.acknowledged || errors.duplicates.length + errors.others.length === 0) throw error;
          existing.push(...errors.duplicates);
          for (const other of errors.others) failures.set(other.index, new Error(other.errmsg ?? 'write failed'));
        }
        return { failures, existing };
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
