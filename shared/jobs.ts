/**
 * The jobs capability's collections as other capabilities read them (report-generation shows a job's
 * outcome). functions/jobs owns every write; readers never import it, only these names and shapes.
 */
export const JOBS_COLLECTION = 'jobs';
export const JOB_EXECUTIONS_COLLECTION = 'job_executions';
export const JOB_EVENTS_COLLECTION = 'job_events';

/** What a reader may rely on in a job document (`_id` = job id). */
export interface JobRecord {
  _id: string;
  type: 'custom' | 'ota';
  description?: string;
  status: string;
  reasonCode?: string;
  targetCount: number;
  createdAt: Date;
  startedAt?: Date;
  completedAt?: Date;
}

/** What a reader may rely on in an execution (`_id` = `{jobId}:{deviceId}`). */
export interface ExecutionRecord {
  _id: string;
  jobId: string;
  deviceId: string;
  /** QUEUED with `released: false` is not yet released by the rollout. */
  released: boolean;
  status: string;
  /** A device reports why it failed in `statusDetails.reason` (by convention). */
  statusDetails?: Record<string, string>;
  executionNumber: number;
  attempts: { executionNumber: number; status: string; statusDetails?: Record<string, string>; at: Date }[];
  releasedAt?: Date;
  completedAt?: Date;
}

/** One line of a job's timeline. */
export interface JobEventRecord {
  jobId: string;
  at: Date;
  kind: string;
  details?: Record<string, unknown>;
}
