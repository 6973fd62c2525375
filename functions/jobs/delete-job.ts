import { ConflictError, NotFoundError } from '../../shared/errors.js';
import { advanceJob } from './advance-jobs.js';
import type { Ctx, JobDeps } from './deps.js';

/**
 * DeleteJob: the job becomes DELETION_IN_PROGRESS (a compare-and-set; an IN_PROGRESS job only with
 * `force`), then its executions, timeline and document go. A crash half-way leaves the status, and the
 * scheduler finishes the deletion.
 */
export async function deleteJob(jobId: string, force: boolean, deps: JobDeps, ctx: Ctx): Promise<void> {
  const job = await deps.jobs.get(jobId);
  if (!job) throw new NotFoundError(`no job ${jobId}`, 'job_not_found');
  if (job.status === 'DELETION_IN_PROGRESS') return;
  if ((job.status === 'IN_PROGRESS' || job.status === 'SCHEDULED') && !force) {
    throw new ConflictError(`job ${jobId} is ${job.status}: cancel it first, or delete with force=true`, 'job_active');
  }
  const deleting = await deps.jobs.compareAndSet(jobId, job.version, {
    $set: { status: 'DELETION_IN_PROGRESS', lastUpdatedAt: deps.clock() },
  });
  if (!deleting) throw new ConflictError(`job ${jobId} changed meanwhile; try again`, 'job_busy');
  await advanceJob(deleting, deps, ctx);
}
