import { ConflictError, DomainRefusalError, NotFoundError } from '../../shared/errors.js';
import { requestDigest } from '../../shared/idempotency-key.js';
import type { Ctx, JobDeps } from './deps.js';
import type { JobDocument } from './job-repository.js';
import { initialRolloutState } from './rollout.js';
import type { CreateJobInput } from './schema.js';

export interface CreateJobOutcome {
  job: JobDocument;
  replayed: boolean;
}

/**
 * Creates a job: SCHEDULED when its start time is ahead, else IN_PROGRESS. Targets are resolved into
 * executions by the scheduler (`advanceJob`), not here, so a job of 100,000 devices is created in one write
 * and a crash half-way through resolving resumes where it stopped.
 *
 * Idempotency-Key: a retry with the same key and the same request gets the job the first attempt created
 * (replayed); the same key for another request is 422; an existing job id without the key is 409.
 */
export async function createJob(
  input: CreateJobInput,
  idempotencyKey: string | undefined,
  deps: JobDeps,
  ctx: Ctx,
): Promise<CreateJobOutcome> {
  const digest = requestDigest(input);
  if (idempotencyKey !== undefined) {
    const earlier = await deps.jobs.findByIdempotencyKey(idempotencyKey);
    if (earlier) return replay(earlier, digest);
  }
  const document = await withArtifactUrl(input, deps);
  const now = deps.clock();
  const startTime = input.scheduling?.startTime ? new Date(input.scheduling.startTime) : undefined;
  const scheduled = startTime !== undefined && startTime.getTime() > now.getTime();
  const job: JobDocument = {
    _id: input.jobId,
    type: input.type,
    ...(input.description === undefined ? {} : { description: input.description }),
    document,
    targets: input.targets,
    targetSelection: input.targetSelection,
    ...(input.rollout ? { rollout: input.rollout } : {}),
    ...(input.abort ? { abort: input.abort } : {}),
    ...(input.timeout ? { timeout: input.timeout } : {}),
    ...(input.retry ? { retry: input.retry } : {}),
    ...(input.scheduling ? { scheduling: input.scheduling } : {}),
    ...(input.type === 'ota' ? { artifactId: String(input.document.artifactId) } : {}),
    status: scheduled ? 'SCHEDULED' : 'IN_PROGRESS',
    version: 1,
    targetsResolved: false,
    targetCount: 0,
    rolloutState: initialRolloutState(input.rollout, now),
    counts: {},
    ...(idempotencyKey === undefined ? {} : { idempotency: { key: idempotencyKey, digest } }),
    createdAt: now,
    ...(scheduled ? {} : { startedAt: now }),
    lastUpdatedAt: now,
  };
  if (!(await deps.jobs.insert(job))) {
    // Refused by the job id or, in a race of two retries, by the unique key: the key's job answers then.
    const byKey = idempotencyKey === undefined ? undefined : await deps.jobs.findByIdempotencyKey(idempotencyKey);
    if (byKey) return replay(byKey, digest);
    throw new ConflictError(`job ${input.jobId} already exists`, 'job_exists', { jobId: input.jobId });
  }
  await deps.jobs.record({ jobId: job._id, at: now, kind: 'created', details: { status: job.status } });
  ctx.logger.info({ jobId: job._id, status: job.status, type: job.type }, 'job created');
  return { job, replayed: false };
}

function replay(earlier: JobDocument, digest: string): CreateJobOutcome {
  if (earlier.idempotency?.digest !== digest) {
    throw new DomainRefusalError('idempotency_key_reused', 'this Idempotency-Key was used for a different job', {
      jobId: earlier._id,
    });
  }
  return { job: earlier, replayed: true };
}

/** An OTA job must name an artifact that exists with that hash; devices get its download URL in the document. */
async function withArtifactUrl(input: CreateJobInput, deps: JobDeps): Promise<Record<string, unknown>> {
  if (input.type !== 'ota') return input.document;
  const artifactId = String(input.document.artifactId);
  const artifact = await deps.artifacts.get(artifactId);
  if (artifact?.status !== 'ready') throw new NotFoundError(`no artifact ${artifactId}`, 'artifact_not_found');
  if (artifact.sha256 !== input.document.sha256 || artifact.size !== input.document.size) {
    throw new DomainRefusalError(
      'artifact_mismatch',
      'the document names another sha256 or size than the artifact has',
      {
        sha256: artifact.sha256,
        size: artifact.size,
      },
    );
  }
  return { ...input.document, url: `${deps.settings.publicUrl}/artifacts/${artifactId}/content` };
}
