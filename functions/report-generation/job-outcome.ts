import { NotFoundError } from '../../shared/errors.js';
import {
  type ExecutionRecord,
  JOB_EVENTS_COLLECTION,
  JOB_EXECUTIONS_COLLECTION,
  JOBS_COLLECTION,
  type JobEventRecord,
  type JobRecord,
} from '../../shared/jobs.js';
import { type MongoHandle, withMongo } from '../../shared/mongo.js';

/**
 * A job's outcome for a report, read from the jobs capability's collections (shared/jobs.ts): executions
 * counted by status, the failures grouped by the reason their devices gave (`statusDetails.reason`; a timeout
 * is `timed_out`), failed attempts that were retried, completions per minute, and the job's timeline.
 */
export interface JobOutcome {
  job: {
    jobId: string;
    type: string;
    description?: string;
    status: string;
    reasonCode?: string;
    createdAt: string;
    startedAt?: string;
    completedAt?: string;
  };
  executions: number;
  counts: Record<string, number>;
  failuresByReason: { status: string; reason: string; count: number }[];
  retriedAttempts: { status: string; reason: string; count: number }[];
  /** Executions that ended per minute since the job started. */
  completions: { minute: string; succeeded: number; failed: number }[];
  timeline: { at: string; kind: string; details?: Record<string, unknown> }[];
}

const FAILED = ['FAILED', 'REJECTED', 'TIMED_OUT'];
const reasonOf = (status: string, details?: Record<string, string>) =>
  details?.reason ?? (status === 'TIMED_OUT' ? 'timed_out' : 'unspecified');

function tally(map: Map<string, { status: string; reason: string; count: number }>, status: string, reason: string) {
  const key = `${status}\u0000${reason}`;
  const entry = map.get(key) ?? { status, reason, count: 0 };
  entry.count += 1;
  map.set(key, entry);
}

export async function jobOutcome(mongo: MongoHandle, jobId: string): Promise<JobOutcome> {
  return withMongo(async () => {
    const db = await mongo.db();
    const job = await db.collection<JobRecord>(JOBS_COLLECTION).findOne({ _id: jobId });
    if (!job) throw new NotFoundError(`no job ${jobId}`, 'unknown_job');
    const counts: Record<string, number> = {};
    const failures = new Map<string, { status: string; reason: string; count: number }>();
    const retried = new Map<string, { status: string; reason: string; count: number }>();
    const perMinute = new Map<number, { succeeded: number; failed: number }>();
    let executions = 0;
    const cursor = db
      .collection<ExecutionRecord>(JOB_EXECUTIONS_COLLECTION)
      .find({ jobId }, { projection: { status: 1, released: 1, statusDetails: 1, attempts: 1, completedAt: 1 } });
    for await (const execution of cursor) {
      executions += 1;
      const status = execution.status === 'QUEUED' && !execution.released ? 'PENDING' : execution.status;
      counts[status] = (counts[status] ?? 0) + 1;
      if (FAILED.includes(status)) tally(failures, status, reasonOf(status, execution.statusDetails));
      for (const attempt of execution.attempts ?? [])
        tally(retried, attempt.status, reasonOf(attempt.status, attempt.statusDetails));
      if (execution.completedAt && (status === 'SUCCEEDED' || FAILED.includes(status))) {
        const minute = Math.floor(execution.completedAt.getTime() / 60_000) * 60_000;
        const bucket = perMinute.get(minute) ?? { succeeded: 0, failed: 0 };
        if (status === 'SUCCEEDED') bucket.succeeded += 1;
        else bucket.failed += 1;
        perMinute.set(minute, bucket);
      }
    }
    const timeline = await db
      .collection<JobEventRecord>(JOB_EVENTS_COLLECTION)
      .find({ jobId }, { projection: { _id: 0 } })
      .sort({ at: 1 })
      .limit(1_000)
      .toArray();
    const byCount = (a: { count: number }, b: { count: number }) => b.count - a.count;
    return {
      job: {
        jobId: job._id,
        type: job.type,
        ...(job.description ? { description: job.description } : {}),
        status: job.status,
        ...(job.reasonCode ? { reasonCode: job.reasonCode } : {}),
        createdAt: job.createdAt.toISOString(),
        ...(job.startedAt ? { startedAt: job.startedAt.toISOString() } : {}),
        ...(job.completedAt ? { completedAt: job.completedAt.toISOString() } : {}),
      },
      executions,
      counts,
      failuresByReason: [...failures.values()].sort(byCount),
      retriedAttempts: [...retried.values()].sort(byCount),
      completions: [...perMinute.entries()]
        .sort(([a], [b]) => a - b)
        .map(([minute, bucket]) => ({ minute: new Date(minute).toISOString(), ...bucket })),
      timeline: timeline.map((event) => ({
        at: event.at.toISOString(),
        kind: event.kind,
        ...(event.details ? { details: event.details } : {}),
      })),
    };
  });
}
