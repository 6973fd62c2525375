import type { Filter } from 'mongodb';
import type { MongoHandle } from '../../shared/mongo.js';
import { withMongo } from '../../shared/mongo.js';
import type { Comparison } from './schema.js';

export const ALERTS_COLLECTION = 'alerts';

/** One alert episode: raised once, cleared once; `_id` = rule, device and episode number. */
export interface AlertDocument {
  _id: string;
  ruleId: string;
  deviceId: string;
  metric: string;
  comparison: Comparison;
  threshold: number;
  clearThreshold: number;
  severity: string;
  status: 'active' | 'cleared';
  raisedAt: Date;
  raisedValue: number | null;
  clearedAt?: Date;
  clearedValue?: number | null;
  acknowledgedAt?: Date;
  /** The API key id that acknowledged it. */
  acknowledgedBy?: string;
}

export interface AlertsRepository {
  /** Idempotent: storing the same episode twice leaves one document. */
  raise(alert: Omit<AlertDocument, 'status'>): Promise<void>;
  clear(
    id: string,
    at: Date,
    value: number | null,
    base: Omit<AlertDocument, 'status' | 'raisedAt' | 'raisedValue'>,
  ): Promise<void>;
  /** Marks an alert seen, once (a repeat keeps the first acknowledgement); undefined when there is none. */
  acknowledge(id: string, by: string, at: Date): Promise<AlertDocument | undefined>;
  /** Alerts raised and not cleared. */
  countActive(): Promise<number>;
  list(filter: {
    deviceId?: string;
    ruleId?: string;
    status?: 'active' | 'cleared';
    limit: number;
    after?: { raisedAt: Date; id: string };
  }): Promise<AlertDocument[]>;
}

export function createAlertsRepository(mongo: MongoHandle): AlertsRepository {
  const collection = async () => (await mongo.db()).collection<AlertDocument>(ALERTS_COLLECTION);
  return {
    raise: (alert) =>
      withMongo(async () => {
        // $setOnInsert: a repeated raise of the same episode (a retry) changes nothing, even after its clear.
        await (await collection()).updateOne(
          { _id: alert._id },
          { $setOnInsert: { ...alert, status: 'active' } },
          { upsert: true },
        );
      }),
    clear: (id, at, value, base) =>
      withMongo(async () => {
        const { _id, ...rest } = base;
        void _id;
        await (await collection()).updateOne(
          { _id: id },
          {
            $set: { status: 'cleared', clearedAt: at, clearedValue: value },
            $setOnInsert: { ...rest, raisedAt: at, raisedValue: null },
          },
          { upsert: true },
        );
      }),
    acknowledge: (id, by, at) =>
      withMongo(async () => {
        const alerts = await collection();
        // Filtered on "not yet acknowledged": the first acknowledgement stands, a repeat only reads.
        await alerts.updateOne(
          { _id: id, acknowledgedAt: { $exists: false } },
          { $set: { acknowledgedAt: at, acknowledgedBy: by } },
        );
        return (await alerts.findOne({ _id: id })) ?? undefined;
      }),
    countActive: () => withMongo(async () => (await collection()).countDocuments({ status: 'active' })),
    list: (filter) =>
      withMongo(async () => {
        const query: Filter<AlertDocument> = {};
        if (filter.deviceId) query.deviceId = filter.deviceId;
        if (filter.ruleId) query.ruleId = filter.ruleId;
        if (filter.status) query.status = filter.status;
        if (filter.after)
          query.$or = [
            { raisedAt: { $lt: filter.after.raisedAt } },
            { raisedAt: filter.after.raisedAt, _id: { $lt: filter.after.id } },
          ];
        return (await collection()).find(query, { sort: { raisedAt: -1, _id: -1 }, limit: filter.limit }).toArray();
      }),
  };
}
