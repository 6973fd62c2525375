import { randomUUID } from 'node:crypto';
import { type Collection, type Filter, MongoBulkWriteError, type UpdateFilter } from 'mongodb';
import { JOB_EXECUTIONS_COLLECTION } from '../../shared/jobs.js';
import { DUPLICATE_KEY, type MongoHandle, withMongo } from '../../shared/mongo.js';
import type { ExecutionStatus } from './schema.js';

/**
 * The `job_executions` collection: one document per (job, device), `_id` = `{jobId}:{deviceId}` (neither id
 * may contain `:`), so a device is in a job at most once whoever creates it. `seq` is the release order; an
 * execution is visible to its device only once `released` (the rollout notified it). Every status change
 * is a compare-and-set on `versionNumber`: of two instances starting the same execution, one wins.
 */
export const EXECUTIONS_COLLECTION = JOB_EXECUTIONS_COLLECTION;

export interface AttemptRecord {
  executionNumber: number;
  status: ExecutionStatus;
  statusDetails?: Record<string, string>;
  at: Date;
}

export interface ExecutionDocument {
  _id: string;
  jobId: string;
  deviceId: string;
  seq: number;
  released: boolean;
  status: ExecutionStatus;
  statusDetails?: Record<string, string>;
  versionNumber: number;
  executionNumber: number;
  /** Retries used so far, by kind. */
  retries: { FAILED?: number; TIMED_OUT?: number };
  /** Attempts that ended and were retried. */
  attempts: AttemptRecord[];
  queuedAt: Date;
  releasedAt?: Date;
  /** Which release call released it (see `release`). */
  releaseToken?: string;
  startedAt?: Date;
  lastUpdatedAt: Date;
  completedAt?: Date;
  timeoutAt?: Date;
}

export const executionId = (jobId: string, deviceId: string) => `${jobId}:${deviceId}`;

/** New executions for devices joining a job: QUEUED, not yet released, in `seq` order from `firstSeq`. */
export function newExecutions(
  jobId: string,
  deviceIds: readonly string[],
  firstSeq: number,
  now: Date,
): ExecutionDocument[] {
  return deviceIds.map((deviceId, i) => ({
    _id: executionId(jobId, deviceId),
    jobId,
    deviceId,
    seq: firstSeq + i,
    released: false,
    status: 'QUEUED',
    versionNumber: 1,
    executionNumber: 1,
    retries: {},
    attempts: [],
    queuedAt: now,
    lastUpdatedAt: now,
  }));
}

export interface ExecutionRepository {
  ensureIndexes(): Promise<void>;
  /** Inserts what is new (unordered); a device already in the job is skipped. Returns how many were new. */
  insertMany(docs: ExecutionDocument[]): Promise<number>;
  get(jobId: string, deviceId: string): Promise<ExecutionDocument | undefined>;
  /** Which of these devices already have an execution of the job. */
  devicesIn(jobId: string, deviceIds: readonly string[]): Promise<Set<string>>;
  listForJob(
    jobId: string,
    status: ExecutionStatus | undefined,
    afterDeviceId: string | undefined,
    limit: number,
  ): Promise<ExecutionDocument[]>;
  /** A device's released executions in these statuses, oldest first. */
  listForDevice(deviceId: string, statuses: readonly ExecutionStatus[]): Promise<ExecutionDocument[]>;
  /** Job ids a device has an execution in. */
  jobIdsOfDevice(deviceId: string): Promise<string[]>;
  /** Releases the QUEUED executions with `from <= seq < to`; returns their device ids. */
  release(jobId: string, from: number, to: number, now: Date): Promise<string[]>;
  /** Device ids of released, still QUEUED executions with `from <= seq < to` (to notify again after a crash). */
  queuedInRange(jobId: string, from: number, to: number): Promise<string[]>;
  /** Applies the update when `versionNumber` still matches, bumping it; undefined when another writer won. */
  compareAndSet(
    id: string,
    versionNumber: number,
    update: UpdateFilter<ExecutionDocument>,
    where?: Filter<ExecutionDocument>,
  ): Promise<ExecutionDocument | undefined>;
  /** Cancels every execution of the job in `statuses`; returns the device ids that were released to a device. */
  cancelAll(jobId: string, statuses: readonly ExecutionStatus[], now: Date): Promise<string[]>;
  /** Cancels the executions the rollout has not released yet (a rollout stopped at its end time). */
  cancelUnreleased(jobId: string, now: Date): Promise<number>;
  /** IN_PROGRESS executions whose timeout passed, at most `limit`. */
  timedOut(now: Date, limit: number): Promise<ExecutionDocument[]>;
  /** Counts by status; QUEUED executions not yet released count as `pending`. */
  counts(jobId: string): Promise<Record<string, number>>;
  /** Whether the job still has an execution that is not terminal. */
  anyActive(jobId: string): Promise<boolean>;
  removeForJob(jobId: string): Promise<void>;
  /** Marks a device's active executions REMOVED (the device left the registry); returns their job ids. */
  removeDevice(deviceId: string, now: Date): Promise<string[]>;
}

export function createExecutionRepository(mongo: MongoHandle): ExecutionRepository {
  const executions = async (): Promise<Collection<ExecutionDocument>> =>
    (await mongo.db()).collection<ExecutionDocument>(EXECUTIONS_COLLECTION);

  async function findActiveIds(filter: Filter<ExecutionDocument>): Promise<ExecutionDocument[]> {
    return (await executions()).find(filter, { projection: { deviceId: 1, released: 1, jobId: 1 } }).toArray();
  }

  return {
    ensureIndexes: () =>
      withMongo(async () => {
        const collection = await executions();
        await collection.createIndex({ jobId: 1, seq: 1 });
        await collection.createIndex({ jobId: 1, deviceId: 1 });
        await collection.createIndex({ deviceId: 1, status: 1 });
        await collection.createIndex({ status: 1, timeoutAt: 1 });
        await collection.createIndex({ jobId: 1, releaseToken: 1 });
      }),
    insertMany: (docs) =>
      withMongo(async () => {
        if (docs.length === 0) return 0;
        try {
          const result = await (await executions()).insertMany(docs, { ordered: false });
          return result.insertedCount;
        } catch (error) {
          if (!(error instanceof MongoBulkWriteError)) throw error;
          const writeErrors = Array.isArray(error.writeErrors) ? error.writeErrors : [error.writeErrors];
          if (writeErrors.some((w) => w.code !== DUPLICATE_KEY)) throw error;
          return docs.length - writeErrors.length;
        }
      }),
    get: (jobId, deviceId) =>
      withMongo(async () => (await (await executions()).findOne({ _id: executionId(jobId, deviceId) })) ?? undefined),
    devicesIn: (jobId, deviceIds) =>
      withMongo(async () => {
        const found = await (await executions())
          .find({ _id: { $in: deviceIds.map((id) => executionId(jobId, id)) } }, { projection: { deviceId: 1 } })
          .toArray();
        return new Set(found.map((execution) => execution.deviceId));
      }),
    listForJob: (jobId, status, afterDeviceId, limit) =>
      withMongo(async () => {
        const query: Filter<ExecutionDocument> = { jobId };
        if (status) query.status = status;
        if (afterDeviceId !== undefined) query.deviceId = { $gt: afterDeviceId };
        return (await executions()).find(query).sort({ jobId: 1, deviceId: 1 }).limit(limit).toArray();
      }),
    listForDevice: (deviceId, statuses) =>
      withMongo(async () =>
        (await executions())
          .find({ deviceId, status: { $in: [...statuses] }, released: true })
          .sort({ releasedAt: 1, _id: 1 })
          .limit(100)
          .toArray(),
      ),
    jobIdsOfDevice: (deviceId) =>
      withMongo(async () =>
        (
          await (
            await executions()
          )
            .find({ deviceId }, { projection: { jobId: 1 } })
            .limit(1_000)
            .toArray()
        ).map((doc) => doc.jobId),
      ),
    release: (jobId, from, to, now) =>
      withMongo(async () => {
        const collection = await executions();
        // Each document is matched by one updateMany only (the next sees released: true), and the token tells
        // which ones this call released: two instances releasing the same range notify each device once.
        const token = randomUUID();
        await collection.updateMany(
          { jobId, seq: { $gte: from, $lt: to }, released: false, status: 'QUEUED' },
          { $set: { released: true, releasedAt: now, lastUpdatedAt: now, releaseToken: token } },
        );
        const mine = await collection.find({ jobId, releaseToken: token }, { projection: { deviceId: 1 } }).toArray();
        return mine.map((doc) => doc.deviceId);
      }),
    queuedInRange: (jobId, from, to) =>
      withMongo(async () =>
        (
          await (
            await executions()
          )
            .find(
              { jobId, seq: { $gte: from, $lt: to }, released: true, status: 'QUEUED' },
              { projection: { deviceId: 1 } },
            )
            .toArray()
        ).map((doc) => doc.deviceId),
      ),
    compareAndSet: (id, versionNumber, update, where = {}) =>
      withMongo(async () => {
        const next = await (await executions()).findOneAndUpdate(
          { ...where, _id: id, versionNumber },
          { ...update, $inc: { ...(update.$inc ?? {}), versionNumber: 1 } } as UpdateFilter<ExecutionDocument>,
          { returnDocument: 'after' },
        );
        return next ?? undefined;
      }),
    cancelAll: (jobId, statuses, now) =>
      withMongo(async () => {
        const filter = { jobId, status: { $in: [...statuses] } };
        const affected = await findActiveIds(filter);
        if (affected.length === 0) return [];
        await (await executions()).updateMany(
          { _id: { $in: affected.map((doc) => doc._id) }, status: { $in: [...statuses] } },
          { $set: { status: 'CANCELED', lastUpdatedAt: now, completedAt: now }, $inc: { versionNumber: 1 } },
        );
        return affected.filter((doc) => doc.released).map((doc) => doc.deviceId);
      }),
    cancelUnreleased: (jobId, now) =>
      withMongo(async () => {
        const result = await (await executions()).updateMany(
          { jobId, status: 'QUEUED', released: false },
          { $set: { status: 'CANCELED', lastUpdatedAt: now, completedAt: now }, $inc: { versionNumber: 1 } },
        );
        return result.modifiedCount;
      }),
    timedOut: (now, limit) =>
      withMongo(async () =>
        (await executions())
          .find({ status: 'IN_PROGRESS', timeoutAt: { $lt: now } })
          .limit(limit)
          .toArray(),
      ),
    counts: (jobId) =>
      withMongo(async () => {
        const groups = await (await executions())
          .aggregate<{ _id: { status: ExecutionStatus; released: boolean }; n: number }>([
            { $match: { jobId } },
            { $group: { _id: { status: '$status', released: '$released' }, n: { $sum: 1 } } },
          ])
          .toArray();
        const out: Record<string, number> = {};
        for (const group of groups) {
          const key = group._id.status === 'QUEUED' && !group._id.released ? 'pending' : group._id.status;
          out[key] = (out[key] ?? 0) + group.n;
        }
        return out;
      }),
    anyActive: (jobId) =>
      withMongo(
        async () =>
          (await (
            await executions()
          ).findOne({ jobId, status: { $in: ['QUEUED', 'IN_PROGRESS'] } }, { projection: { _id: 1 } })) !== null,
      ),
    removeForJob: (jobId) =>
      withMongo(async () => {
        await (await executions()).deleteMany({ jobId });
      }),
    removeDevice: (deviceId, now) =>
      withMongo(async () => {
        const filter = { deviceId, status: { $in: ['QUEUED', 'IN_PROGRESS'] as ExecutionStatus[] } };
        const affected = await findActiveIds(filter);
        if (affected.length === 0) return [];
        await (await executions()).updateMany(
          { _id: { $in: affected.map((doc) => doc._id) }, status: { $in: ['QUEUED', 'IN_PROGRESS'] } },
          { $set: { status: 'REMOVED', lastUpdatedAt: now, completedAt: now }, $inc: { versionNumber: 1 } },
        );
        return affected.map((doc) => doc.jobId);
      }),
  };
}
