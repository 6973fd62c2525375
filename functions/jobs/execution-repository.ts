import type { Collection, Filter, UpdateFilter } from 'mongodb';
import { JOB_EXECUTIONS_COLLECTION } from '../../shared/jobs.js';
import { type MongoHandle, unorderedInsertErrors, withMongo } from '../../shared/mongo.js';
import type { ExecutionStatus } from './schema.js';

/**
 * The `job_executions` collection: one document per (job, device), `_id` = `{jobId}:{deviceId}` (neither id
 * may contain `:`), so a device is in a job at most once whoever creates it. `seq` is the release order, and
 * `slot` = `{jobId}#{seq}` finds an execution by it; an execution is visible to its device only once `released`
 * (the rollout notified it). Every status change is a compare-and-set on `versionNumber`: of two instances
 * starting the same execution, one wins.
 *
 * Nothing a rollout does per execution may scan the collection, which holds every execution of every job: each
 * such read or write names documents by a unique index — `_id`, `slot`, or `{_id, versionNumber}` for a
 * compare-and-set — with equality or `$in` only. MongoDB would use any index; mongo-java-server (our test and
 * development server) looks documents up by a unique index only, and only when the filter's fields are exactly
 * the index's (AbstractUniqueIndex.canHandle), and scans the collection for every other filter.
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
  /** `{jobId}#{seq}`: the release of a range finds its executions by this (unique). */
  slot: string;
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
  startedAt?: Date;
  lastUpdatedAt: Date;
  completedAt?: Date;
  timeoutAt?: Date;
}

export const executionId = (jobId: string, deviceId: string) => `${jobId}:${deviceId}`;
const slotOf = (jobId: string, seq: number) => `${jobId}#${seq}`;
const slotsOf = (jobId: string, from: number, to: number) =>
  Array.from({ length: Math.max(0, to - from) }, (_, i) => slotOf(jobId, from + i));

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
    slot: slotOf(jobId, firstSeq + i),
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
  /**
   * Each device's released executions in these statuses, oldest first, among the executions of `jobIds` (the jobs
   * that may still have active executions: job-repository.ts `mayHaveActive`), looked up by `_id`.
   */
  listForDevices(
    jobIds: readonly string[],
    deviceIds: readonly string[],
    statuses: readonly ExecutionStatus[],
  ): Promise<Map<string, ExecutionDocument[]>>;
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

  /** The executions with `from <= seq < to`, by slot (a range of executions written before `slot`: by seq). */
  async function inRange(jobId: string, from: number, to: number): Promise<ExecutionDocument[]> {
    const collection = await executions();
    const projection = { deviceId: 1, versionNumber: 1, status: 1, released: 1 };
    const found = await collection.find({ slot: { $in: slotsOf(jobId, from, to) } }, { projection }).toArray();
    if (found.length > 0 || to <= from) return found;
    return collection.find({ jobId, seq: { $gte: from, $lt: to } }, { projection }).toArray();
  }

  async function findActiveIds(filter: Filter<ExecutionDocument>): Promise<ExecutionDocument[]> {
    return (await executions()).find(filter, { projection: { deviceId: 1, released: 1, jobId: 1 } }).toArray();
  }

  return {
    ensureIndexes: () =>
      withMongo(async () => {
        const collection = await executions();
        // Unique, so mongo-java-server looks a compare-and-set's {_id, versionNumber} up instead of scanning.
        await collection.createIndex({ _id: 1, versionNumber: 1 }, { unique: true });
        // Sparse: executions written before `slot` existed lack it (their ranges are released by scanning).
        await collection.createIndex({ slot: 1 }, { unique: true, sparse: true });
        await collection.createIndex({ jobId: 1, seq: 1 });
        await collection.createIndex({ jobId: 1, deviceId: 1 });
        await collection.createIndex({ deviceId: 1, status: 1 });
        await collection.createIndex({ status: 1, timeoutAt: 1 });
      }),
    insertMany: (docs) =>
      withMongo(async () => {
        if (docs.length === 0) return 0;
        try {
          const result = await (await executions()).insertMany(docs, { ordered: false });
          return result.insertedCount;
        } catch (error) {
          const errors = unorderedInsertErrors(error);
          if (!errors || errors.others.length > 0) throw error;
          return docs.length - errors.duplicates.length;
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
    listForDevices: (jobIds, deviceIds, statuses) =>
      withMongo(async () => {
        const out = new Map<string, ExecutionDocument[]>(deviceIds.map((id) => [id, []]));
        if (jobIds.length === 0 || deviceIds.length === 0) return out;
        const ids = deviceIds.flatMap((deviceId) => jobIds.map((jobId) => executionId(jobId, deviceId)));
        const wanted = new Set<string>(statuses);
        const found = await (await executions()).find({ _id: { $in: ids } }).toArray();
        for (const execution of found) {
          if (execution.released && wanted.has(execution.status)) out.get(execution.deviceId)?.push(execution);
        }
        for (const list of out.values()) {
          list.sort(
            (a, b) =>
              (a.releasedAt?.getTime() ?? 0) - (b.releasedAt?.getTime() ?? 0) ||
              (a._id < b._id ? -1 : a._id > b._id ? 1 : 0),
          );
          list.splice(100);
        }
        return out;
      }),
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
        // The range's executions by slot, then one compare-and-set each on {_id, versionNumber} in one bulk write
        // (no version bump: being released changes nothing a device's update names). The caller claimed the range
        // on the job first, so only a repair of an unconfirmed range races this: its devices may hear twice.
        const fresh = (await inRange(jobId, from, to)).filter((doc) => doc.status === 'QUEUED' && !doc.released);
        if (fresh.length === 0) return [];
        await collection.bulkWrite(
          fresh.map((doc) => ({
            updateOne: {
              filter: { _id: doc._id, versionNumber: doc.versionNumber },
              update: { $set: { released: true, releasedAt: now, lastUpdatedAt: now } },
            },
          })),
          { ordered: false },
        );
        return fresh.map((doc) => doc.deviceId);
      }),
    queuedInRange: (jobId, from, to) =>
      withMongo(async () =>
        (await inRange(jobId, from, to))
          .filter((doc) => doc.status === 'QUEUED' && doc.released)
          .map((doc) => doc.deviceId),
      ),
    compareAndSet: (id, versionNumber, update) =>
      withMongo(async () => {
        const next = await (await executions()).findOneAndUpdate(
          { _id: id, versionNumber },
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
