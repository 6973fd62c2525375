import { ConflictError, NotFoundError } from '../../shared/errors.js';
import type { Ctx, JobDeps } from './deps.js';
import { notifyDevices } from './device-messages.js';
import type { JobDocument } from './job-repository.js';
import type { AbortVerdict } from './rollout.js';
import { jobMayMove } from './states.js';

export interface EndJobInput {
  status: 'CANCELED' | 'ABORTED' | 'COMPLETED';
  /** Cancel IN_PROGRESS executions too (AWS force cancel); QUEUED ones are canceled always. */
  force?: boolean;
  reasonCode?: string;
  comment?: string;
  details?: Record<string, unknown>;
}

/**
 * Ends a job: the job's status first (a compare-and-set, so of two cancels one acts and the other finds it
 * done), flagged `cleanupPending`; then its QUEUED executions (and IN_PROGRESS ones when forced) become
 * CANCELED and their devices hear it; then the flag goes. A crash in between leaves the flag, and the
 * scheduler finishes the cleanup (`finishCleanup`).
 */
export async function endJob(jobId: string, input: EndJobInput, deps: JobDeps, ctx: Ctx): Promise<JobDocument> {
  for (let attempt = 0; attempt < 5; attempt += 1) {
    const job = await deps.jobs.get(jobId);
    if (!job) throw new NotFoundError(`no job ${jobId}`, 'job_not_found');
    if (job.status === input.status && input.status !== 'CANCELED') return job;
    if (job.status === 'CANCELED' && input.status === 'CANCELED') {
      // Cancel again with force: cancel what is still IN_PROGRESS (AWS allows force after a plain cancel).
      if (!input.force || job.forceCanceled) return job;
    } else if (!jobMayMove(job.status, input.status)) {
      throw new ConflictError(`job ${jobId} is ${job.status}; it cannot become ${input.status}`, 'invalid_job_state', {
        status: job.status,
      });
    }
    const now = deps.clock();
    const ended = await deps.jobs.compareAndSet(jobId, job.version, {
      $set: {
        status: input.status,
        completedAt: now,
        lastUpdatedAt: now,
        cleanupPending: true,
        ...(input.force ? { forceCanceled: true } : {}),
        ...(input.reasonCode ? { reasonCode: input.reasonCode } : {}),
        ...(input.comment ? { comment: input.comment } : {}),
      },
    });
    if (!ended) continue;
    await deps.jobs.record({
      jobId,
      at: now,
      kind: input.status.toLowerCase(),
      details: { force: input.force ?? false, reasonCode: input.reasonCode, ...input.details },
    });
    ctx.logger.info({ jobId, status: input.status, force: input.force ?? false }, 'job ended');
    return finishCleanup(ended, deps, ctx);
  }
  throw new ConflictError(`job ${jobId} changed concurrently; try again`, 'job_busy');
}

/** The second half of `endJob`, also run by the scheduler for a job whose cleanup a crash interrupted. */
export async function finishCleanup(job: JobDocument, deps: JobDeps, ctx: Ctx): Promise<JobDocument> {
  const statuses = job.forceCanceled ? (['QUEUED', 'IN_PROGRESS'] as const) : (['QUEUED'] as const);
  const canceled = job.status === 'COMPLETED' ? [] : await deps.executions.cancelAll(job._id, statuses, deps.clock());
  if (canceled.length > 0) await notifyDevices(canceled, deps, ctx);
  const counts = await deps.executions.counts(job._id);
  const cleaned = await deps.jobs.settleCleanup(job._id, counts);
  return cleaned ?? job;
}

/**
 * An execution of an ended job reached a final state (a cancel without force, or an abort, lets IN_PROGRESS ones
 * finish): when it was the job's last active one, the job is marked `drained`, and devices' pending executions are
 * no longer looked for in it. `activeLeft` counts them down, so the executions are asked (`anyActive`, a scan on
 * mongo-java-server) once at the end, not on every outcome; an outcome counted by the cleanup as well as here makes
 * it ask one outcome early, and find one still active.
 */
export async function drainIfIdle(job: JobDocument | undefined, deps: JobDeps): Promise<void> {
  if (!job || job.drained || job.cleanupPending || !ENDED.has(job.status)) return;
  const left = await deps.jobs.endedOutcome(job._id);
  if (left !== undefined && left > 0) return;
  if (!(await deps.executions.anyActive(job._id))) await deps.jobs.markDrained(job._id);
}
const ENDED = new Set<string>(['COMPLETED', 'CANCELED', 'ABORTED']);

/** Ends the job because its abort criteria were met (see rollout.ts `abortVerdict`). */
export function abortJob(jobId: string, verdict: AbortVerdict, deps: JobDeps, ctx: Ctx): Promise<JobDocument> {
  const reasonCode = `abort_${verdict.failureType.toLowerCase()}`;
  return endJob(jobId, { status: 'ABORTED', reasonCode, details: { ...verdict } }, deps, ctx);
}
