import type { Collection } from 'mongodb';
import { newestFirst } from '../../shared/keyset-cursor.js';
import type { MongoHandle } from '../../shared/mongo.js';
import { withMongo } from '../../shared/mongo.js';
import type { ScheduleRequest } from './schema.js';

export const SCHEDULES_COLLECTION = 'report_schedules';

/** A scheduled report (`report_schedules`, `_id` = schedule id). */
export interface ScheduleDocument extends ScheduleRequest {
  _id: string;
  createdAt: Date;
  /** The end of the next period to report on; due once the clock passes it. */
  nextRunAt: Date;
  lastReportId?: string;
  lastRunAt?: Date;
  lastError?: { code: string; message: string };
}

export interface ScheduleRepository {
  insert(doc: ScheduleDocument): Promise<void>;
  find(id: string): Promise<ScheduleDocument | null>;
  remove(id: string): Promise<boolean>;
  /** Schedules, newest first, after a keyset cursor; `next` when more follow. */
  list(page: { limit: number; cursor?: string }): Promise<{ items: ScheduleDocument[]; next: string | null }>;
  due(now: Date, limit: number): Promise<ScheduleDocument[]>;
  /** Moves `nextRunAt` on only if it is still `expected` (another instance may have done it). */
  advance(
    id: string,
    expected: Date,
    change: Pick<ScheduleDocument, 'nextRunAt'> & Partial<ScheduleDocument>,
  ): Promise<boolean>;
}

export function createScheduleRepository(mongo: MongoHandle): ScheduleRepository {
  const collection = async (): Promise<Collection<ScheduleDocument>> =>
    (await mongo.db()).collection<ScheduleDocument>(SCHEDULES_COLLECTION);
  return {
    insert: (doc) => withMongo(async () => void (await (await collection()).insertOne(doc))),
    find: (id) => withMongo(async () => (await collection()).findOne({ _id: id })),
    remove: (id) => withMongo(async () => (await (await collection()).deleteOne({ _id: id })).deletedCount === 1),
    list: (page) => newestFirst(collection, 'createdAt', page),
    due: (now, limit) =>
      withMongo(async () =>
        (await collection()).find({ nextRunAt: { $lte: now } }, { sort: { nextRunAt: 1 }, limit }).toArray(),
      ),
    advance: (id, expected, change) =>
      withMongo(
        async () =>
          (await (await collection()).updateOne({ _id: id, nextRunAt: expected }, { $set: change })).modifiedCount ===
          1,
      ),
  };
}
