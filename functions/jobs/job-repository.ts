import type { Collection, Filter, UpdateFilter } from 'mongodb';
import { JOB_EVENTS_COLLECTION, JOBS_COLLECTION } from '../../shared/jobs.js';
import { insertIfAbsent, type MongoHandle, withMongo } from '../../shared/mongo.js';
import type { RolloutState } from './rollout.js';
import type { Abort, JobStatus, Retry, Rollout, Scheduling, StatusCounts, Targets } from './schema.js';

/**
 * The `jobs` collection (`_id` = job id). Every change of status or rollout state is a compare-and-set on
 * `version` (no transactions: portable Mongo), so two instances advancing the same job never both win.
 * `counts` holds the terminal outcomes as `$inc`s (a fast view for abort checks); the scheduler rewrites
 * them from the executions themselves on every pass, so a crash between the two writes heals.
 */
export { JOB_EVENTS_COLLECTION, JOBS_COLLECTION } from '../../shared/jobs.js';

export interface JobDocument {
  _id: string;
  type: 'custom' | 'ota';
  description?: string;
  document: Record<string, unknown>;
  targets: Targets;
  targetSelection: 'SNAPSHOT' | 'CONTINUOUS';
  rollout?: Rollout;
  abort?: Abort;
  timeout?: { inProgressTimeoutInMinutes: number };
  retry?: Retry;
  scheduling?: Scheduling;
  status: JobStatus;
  version: number;
  reasonCode?: string;
  comment?: string;
  forceCanceled?: boolean;
  /** The rollout reached its end time with STOP_ROLLOUT: nothing more is released. */
  rolloutStopped?: boolean;
  /** The job ended but its executions were not all canceled yet (endJob's second half is owed). */
  cleanupPending?: boolean;
  /**
   * The job ended and none of its executions is QUEUED or IN_PROGRESS any more (set once, never cleared): a
   * device's pending executions are looked for only in the jobs without it (`mayHaveActive`).
   */
  drained?: boolean;
  /**
   * Once the job ended: its executions still QUEUED or IN_PROGRESS when its cleanup counted them, less each final
   * outcome since (`endedOutcome`). At 0 or below the executions are asked once (`anyActive`) before `drained`.
   */
  activeLeft?: number;
  /** The artifact an OTA job names (artifact retention looks here). */
  artifactId?: string;
  /** Whether the targets were resolved into executions (at start). */
  targetsResolved: boolean;
  /** Executions created so far: the next one gets `seq = targetCount`. */
  targetCount: number;
  rolloutState: RolloutState;
  counts: Partial<StatusCounts>;
  idempotency?: { key: string; digest: string };
  createdAt: Date;
  startedAt?: Date;
  completedAt?: Date;
  lastUpdatedAt: Date;
}

/** One line of a job's timeline (what report-generation shows). */
export interface JobEvent {
  jobId: string;
  at: Date;
  kind: string;
  details?: Record<string, unknown>;
}

export interface JobFilter {
  status?: JobStatus;
  type?: 'custom' | 'ota';
  ids?: string[];
}

export interface JobRepository {
  ensureIndexes(): Promise<void>;
  insert(job: JobDocument): Promise<boolean>;
  get(id: string): Promise<JobDocument | undefined>;
  findByIdempotencyKey(key: string): Promise<JobDocument | undefined>;
  list(filter: JobFilter, afterId: string | undefined, limit: number): Promise<JobDocument[]>;
  /** Applies the update when the version still matches, bumping it; undefined when another writer won. */
  compareAndSet(id: string, version: number, update: UpdateFilter<JobDocument>): Promise<JobDocument | undefined>;
  /** Counts terminal outcomes (and nothing else: no version bump, never conflicts). */
  incrementCounts(id: string, inc: Partial<Record<keyof StatusCounts, number>>): Promise<JobDocument | undefined>;
  /** Reserves `n` sequence numbers for new executions; returns the first. */
  reserveSeq(id: string, n: number): Promise<number>;
  /** Jobs the scheduler looks at: SCHEDULED, IN_PROGRESS, DELETION_IN_PROGRESS. */
  live(): Promise<JobDocument[]>;
  /** Whether any job is live (the cheap check of an idle tick). */
  anyLive(): Promise<boolean>;
  /** CONTINUOUS jobs in progress (for devices that join later). */
  continuous(): Promise<JobDocument[]>;
  /** Stores counts recomputed from the executions (no version bump). */
  setCounts(id: string, counts: Partial<StatusCounts>): Promise<void>;
  /** Records that releases up to `released` reached their executions (no version bump). */
  confirmReleased(id: string, released: number): Promise<void>;
  /** Clears `cleanupPending` and stores the final counts (`drained` when they hold nothing active). */
  settleCleanup(id: string, counts: Partial<StatusCounts>): Promise<JobDocument | undefined>;
  /** The ids of the jobs that may still have QUEUED or IN_PROGRESS executions: every job not `drained`. */
  mayHaveActive(): Promise<string[]>;
  /** Records that an ended job has no active execution left. */
  markDrained(id: string): Promise<void>;
  /** One more execution of an ended job reached a final state: decrements `activeLeft`, returns what is left. */
  endedOutcome(id: string): Promise<number | undefined>;
  remove(id: string): Promise<void>;
  referencesArtifact(artifactId: string): Promise<boolean>;
  idsReferencingArtifact(artifactId: string): Promise<string[]>;
  record(event: JobEvent): Promise<void>;
  timeline(jobId: string, limit: number): Promise<JobEvent[]>;
  removeTimeline(jobId: string): Promise<void>;
}

/** Executions of these counts still QUEUED (released or not) or IN_PROGRESS. */
export const activeIn = (counts: Partial<StatusCounts>) =>
  (counts.pending ?? 0) + (counts.QUEUED ?? 0) + (counts.IN_PROGRESS ?? 0);

const LIVE: Filter<JobDocument> = {
  $or: [{ status: { $in: ['SCHEDULED', 'IN_PROGRESS', 'DELETION_IN_PROGRESS'] } }, { cleanupPending: true }],
};

export function createJobRepository(mongo: MongoHandle): JobRepository {
  const jobs = async (): Promise<Collection<JobDocument>> =>
    (await mongo.db()).collection<JobDocument>(JOBS_COLLECTION);
  const events = async (): Promise<Collection<JobEvent>> =>
    (await mongo.db()).collection<JobEvent>(JOB_EVENTS_COLLECTION);
  return {
    ensureIndexes: () =>
      withMongo(async () => {
        await (await jobs()).createIndex({ status: 1, _id: 1 });
        // Unique, so mongo-java-server looks a compare-and-set's {_id, version} up instead of scanning.
        await (await jobs()).createIndex({ _id: 1, version: 1 }, { unique: true });
        await (await jobs()).createIndex({ drained: 1 });
        await (await jobs()).createIndex({ artifactId: 1 });
        await (await jobs()).createIndex({ 'idempotency.key': 1 }, { unique: true, sparse: true });
        await (await events()).createIndex({ jobId: 1, at: 1 });
      }),
    insert: (job) => withMongo(async () => insertIfAbsent(await jobs(), job)),
    get: (id) => withMongo(async () => (await (await jobs()).findOne({ _id: id })) ?? undefined),
    findByIdempotencyKey: (key) =>
      withMongo(async () => (await (await jobs()).findOne({ 'idempotency.key': key })) ?? undefined),
    list: (filter, afterId, limit) =>
      withMongo(async () => {
        const query: Filter<JobDocument> = {};
        if (filter.status) query.status = filter.status;
        if (filter.type) query.type = filter.type;
        const idRange: Record<string, unknown> = {};
        if (filter.ids) idRange.$in = filter.ids;
        if (afterId !== undefined) idRange.$gt = afterId;
        if (Object.keys(idRange).length > 0) query._id = idRange as Filter<JobDocument>['_id'];
        return (await jobs()).find(query).sort({ _id: 1 }).limit(limit).toArray();
      }),
    compareAndSet: (id, version, update) =>
      withMongo(async () => {
        const next = await (await jobs()).findOneAndUpdate(
          { _id: id, version },
          { ...update, $inc: { ...(update.$inc ?? {}), version: 1 } } as UpdateFilter<JobDocument>,
          { returnDocument: 'after' },
        );
        return next ?? undefined;
      }),
    incrementCounts: (id, inc) =>
      withMongo(async () => {
        const fields = Object.fromEntries(Object.entries(inc).map(([status, n]) => [`counts.${status}`, n]));
        const next = await (await jobs()).findOneAndUpdate({ _id: id }, { $inc: fields }, { returnDocument: 'after' });
        return next ?? undefined;
      }),
    reserveSeq: (id, n) =>
      withMongo(async () => {
        const next = await (await jobs()).findOneAndUpdate(
          { _id: id },
          { $inc: { targetCount: n } },
          { returnDocument: 'after', projection: { targetCount: 1 } },
        );
        if (!next) throw new Error(`job ${id} vanished while reserving executions`);
        return next.targetCount - n;
      }),
    live: () => withMongo(async () => (await jobs()).find(LIVE).toArray()),
    anyLive: () => withMongo(async () => (await (await jobs()).findOne(LIVE, { projection: { _id: 1 } })) !== null),
    continuous: () =>
      withMongo(async () =>
        (await jobs()).find({ status: 'IN_PROGRESS', targetSelection: 'CONTINUOUS', targetsResolved: true }).toArray(),
      ),
    setCounts: (id, counts) =>
      withMongo(async () => {
        await (await jobs()).updateOne({ _id: id }, { $set: { counts } });
      }),
    confirmReleased: (id, released) =>
      withMongo(async () => {
        await (await jobs()).updateOne({ _id: id }, { $max: { 'rolloutState.confirmed': released } });
      }),
    settleCleanup: (id, counts) =>
      withMongo(async () => {
        const next = await (await jobs()).findOneAndUpdate(
          { _id: id },
          {
            $set: { counts, activeLeft: activeIn(counts), ...(activeIn(counts) === 0 ? { drained: true } : {}) },
            $unset: { cleanupPending: '' },
          },
          { returnDocument: 'after' },
        );
        return next ?? undefined;
      }),
    mayHaveActive: () =>
      withMongo(async () =>
        (await (await jobs()).find({ drained: { $ne: true } }, { projection: { _id: 1 } }).toArray()).map((j) => j._id),
      ),
    markDrained: (id) =>
      withMongo(async () => {
        await (await jobs()).updateOne(
          { _id: id, status: { $in: ['COMPLETED', 'CANCELED', 'ABORTED'] } },
          {
            $set: { drained: true },
          },
        );
      }),
    endedOutcome: (id) =>
      withMongo(async () => {
        const next = await (await jobs()).findOneAndUpdate(
          { _id: id },
          { $inc: { activeLeft: -1 } },
          { returnDocument: 'after', projection: { activeLeft: 1 } },
        );
        return next?.activeLeft;
      }),
    remove: (id) =>
      withMongo(async () => {
        await (await jobs()).deleteOne({ _id: id, status: 'DELETION_IN_PROGRESS' });
      }),
    referencesArtifact: (artifactId) =>
      withMongo(async () => (await (await jobs()).findOne({ artifactId }, { projection: { _id: 1 } })) !== null),
    idsReferencingArtifact: (artifactId) =>
      withMongo(async () =>
        (
          await (
            await jobs()
          )
            .find({ artifactId }, { projection: { _id: 1 } })
            .limit(1_000)
            .toArray()
        ).map((j) => j._id),
      ),
    record: (event) =>
      withMongo(async () => {
        await (await events()).insertOne({ ...event });
      }),
    timeline: (jobId, limit) =>
      withMongo(async () =>
        (await events())
          .find({ jobId }, { projection: { _id: 0 } })
          .sort({ at: 1 })
          .limit(limit)
          .toArray(),
      ),
    removeTimeline: (jobId) =>
      withMongo(async () => {
        await (await events()).deleteMany({ jobId });
      }),
  };
}
