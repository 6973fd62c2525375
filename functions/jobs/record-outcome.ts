import type { Ctx, JobDeps } from './deps.js';
import { abortJob, drainIfIdle } from './end-job.js';
import type { ExecutionDocument } from './execution-repository.js';
import { jobConfigOf } from './job-config.js';
import { abortVerdict, fullCounts, shouldRetry } from './rollout.js';
import type { ExecutionStatus } from './schema.js';

export interface Outcome {
  /** The execution as written; undefined when another writer changed it first (re-read and decide again). */
  execution?: ExecutionDocument;
  retried: boolean;
}

/**
 * Ends one attempt of an execution with a terminal status (a device's SUCCEEDED/FAILED/REJECTED, or the
 * scheduler's TIMED_OUT), in one compare-and-set on its versionNumber. A FAILED or TIMED_OUT attempt that
 * the job's retry criteria allow becomes a new attempt instead: QUEUED, executionNumber + 1, the ended
 * attempt kept in `attempts`. A final outcome is counted on the job, and may trip its abort criteria.
 */
export async function recordOutcome(
  execution: ExecutionDocument,
  status: ExecutionStatus,
  statusDetails: Record<string, string> | undefined,
  deps: JobDeps,
  ctx: Ctx,
): Promise<Outcome> {
  const config = await jobConfigOf(execution.jobId, deps);
  const now = deps.clock();
  const details = statusDetails ?? execution.statusDetails;
  if ((status === 'FAILED' || status === 'TIMED_OUT') && shouldRetry(config?.retry, status, execution.retries)) {
    const retried = await deps.executions.compareAndSet(execution._id, execution.versionNumber, {
      $set: {
        status: 'QUEUED',
        executionNumber: execution.executionNumber + 1,
        [`retries.${status}`]: (execution.retries[status] ?? 0) + 1,
        released: true,
        releasedAt: now,
        lastUpdatedAt: now,
      },
      $push: { attempts: { executionNumber: execution.executionNumber, status, statusDetails: details, at: now } },
      $unset: { startedAt: '', timeoutAt: '', statusDetails: '' },
    });
    if (retried) ctx.logger.info({ id: execution._id, status, attempt: retried.executionNumber }, 'execution retried');
    return { execution: retried, retried: true };
  }
  const ended = await deps.executions.compareAndSet(execution._id, execution.versionNumber, {
    $set: { status, lastUpdatedAt: now, completedAt: now, ...(details ? { statusDetails: details } : {}) },
    $unset: { timeoutAt: '' },
  });
  if (!ended) return { retried: false };
  const job = await deps.jobs.incrementCounts(execution.jobId, { [status]: 1 });
  await drainIfIdle(job, deps);
  const verdict = job?.status === 'IN_PROGRESS' ? abortVerdict(job.abort, fullCounts(job.counts)) : undefined;
  if (verdict) {
    await abortJob(execution.jobId, verdict, deps, ctx).catch((error: unknown) =>
      ctx.logger.warn({ err: error, jobId: execution.jobId }, 'abort deferred to the scheduler'),
    );
  }
  return { execution: ended, retried: false };
}
