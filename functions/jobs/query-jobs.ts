import { NotFoundError } from '../../shared/errors.js';
import type { JobDeps } from './deps.js';
import type { ExecutionDocument } from './execution-repository.js';
import type { JobDocument } from './job-repository.js';
import { fullCounts } from './rollout.js';
import type { ExecutionStatus, JobStatus, StatusCounts } from './schema.js';

const iso = (date: Date | undefined) => (date ? { value: date.toISOString() } : undefined);

export function toJobView(job: JobDocument, counts: StatusCounts = fullCounts(job.counts)) {
  const optional = (key: string, value: unknown) => (value === undefined ? {} : { [key]: value });
  return {
    jobId: job._id,
    type: job.type,
    ...optional('description', job.description),
    status: job.status,
    version: job.version,
    document: job.document,
    targets: job.targets,
    targetSelection: job.targetSelection,
    ...optional('rollout', job.rollout),
    ...optional('abort', job.abort),
    ...optional('timeout', job.timeout),
    ...optional('retry', job.retry),
    ...optional('scheduling', job.scheduling),
    ...optional('reasonCode', job.reasonCode),
    ...optional('comment', job.comment),
    ...optional('forceCanceled', job.forceCanceled),
    ...optional('currentRatePerMinute', job.rolloutState.rate),
    targetCount: job.targetCount,
    counts,
    createdAt: job.createdAt.toISOString(),
    ...optional('startedAt', iso(job.startedAt)?.value),
    ...optional('completedAt', iso(job.completedAt)?.value),
    lastUpdatedAt: job.lastUpdatedAt.toISOString(),
  };
}

export function toExecutionView(execution: ExecutionDocument) {
  return {
    jobId: execution.jobId,
    deviceId: execution.deviceId,
    status: execution.status === 'QUEUED' && !execution.released ? ('PENDING' as const) : execution.status,
    ...(execution.statusDetails ? { statusDetails: execution.statusDetails } : {}),
    versionNumber: execution.versionNumber,
    executionNumber: execution.executionNumber,
    retryAttempt: execution.executionNumber - 1,
    queuedAt: execution.queuedAt.toISOString(),
    ...(execution.startedAt ? { startedAt: execution.startedAt.toISOString() } : {}),
    lastUpdatedAt: execution.lastUpdatedAt.toISOString(),
    ...(execution.completedAt ? { completedAt: execution.completedAt.toISOString() } : {}),
    ...(execution.timeoutAt ? { timeoutAt: execution.timeoutAt.toISOString() } : {}),
  };
}

/** One job with counts computed from its executions now (the stored counts may lag a pass behind). */
export async function getJob(jobId: string, deps: JobDeps) {
  const job = await deps.jobs.get(jobId);
  if (!job) throw new NotFoundError(`no job ${jobId}`, 'job_not_found');
  return toJobView(job, fullCounts(await deps.executions.counts(jobId)));
}

export async function listJobs(
  query: { status?: JobStatus; type?: 'custom' | 'ota'; deviceId?: string; limit: number; cursor?: string },
  deps: JobDeps,
) {
  const ids = query.deviceId === undefined ? undefined : await deps.executions.jobIdsOfDevice(query.deviceId);
  const jobs = await deps.jobs.list({ status: query.status, type: query.type, ids }, query.cursor, query.limit + 1);
  const page = jobs.slice(0, query.limit);
  return {
    items: page.map((job) => toJobView(job)),
    ...(jobs.length > query.limit ? { nextCursor: page[page.length - 1]!._id } : {}),
  };
}

export async function listExecutions(
  jobId: string,
  query: { status?: ExecutionStatus; limit: number; cursor?: string },
  deps: JobDeps,
) {
  if (!(await deps.jobs.get(jobId))) throw new NotFoundError(`no job ${jobId}`, 'job_not_found');
  const executions = await deps.executions.listForJob(jobId, query.status, query.cursor, query.limit + 1);
  const page = executions.slice(0, query.limit);
  return {
    items: page.map(toExecutionView),
    ...(executions.length > query.limit ? { nextCursor: page[page.length - 1]!.deviceId } : {}),
  };
}

export async function getExecution(jobId: string, deviceId: string, deps: JobDeps) {
  const execution = await deps.executions.get(jobId, deviceId);
  if (!execution) throw new NotFoundError(`device ${deviceId} has no execution of job ${jobId}`, 'execution_not_found');
  return { ...toExecutionView(execution), attempts: execution.attempts.map((a) => ({ ...a, at: a.at.toISOString() })) };
}
