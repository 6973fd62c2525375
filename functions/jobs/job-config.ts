import { LRUCache } from 'lru-cache';
import type { JobDeps } from './deps.js';
import type { JobDocument } from './job-repository.js';

/** The parts of a job fixed at creation: what devices and outcomes need, read on every update. */
export type JobConfig = Pick<JobDocument, '_id' | 'type' | 'document' | 'abort' | 'retry' | 'timeout'>;

// Never changes after creation, so a process keeps the recent ones (a fleet asks for the same few jobs).
const configs = new LRUCache<string, JobConfig>({ max: 1_000, ttl: 300_000 });

export async function jobConfigOf(jobId: string, deps: Pick<JobDeps, 'jobs'>): Promise<JobConfig | undefined> {
  const hit = configs.get(jobId);
  if (hit) return hit;
  const job = await deps.jobs.get(jobId);
  if (!job) return undefined;
  const config: JobConfig = {
    _id: job._id,
    type: job.type,
    document: job.document,
    abort: job.abort,
    retry: job.retry,
    timeout: job.timeout,
  };
  configs.set(jobId, config);
  return config;
}

/** A job id can be reused after a delete: forget what this process knew of it. */
export function forgetJobConfig(jobId: string): void {
  configs.delete(jobId);
}
