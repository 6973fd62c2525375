import type { ExecutionStatus, JobStatus } from './schema.js';

/**
 * The state machines of jobs and executions, as pure rules. States only move forward: every write is a
 * compare-and-set on the document's version, and these tables say which moves exist at all (AWS IoT Jobs'
 * job and execution states; ABORTED is kiot's name for a job its abort criteria canceled).
 *
 * A retry is not a move back: it starts a new `executionNumber` of the same execution, QUEUED again, and
 * the attempt that failed is kept in `attempts`.
 */
export const TERMINAL_EXECUTION: readonly ExecutionStatus[] = [
  'SUCCEEDED',
  'FAILED',
  'TIMED_OUT',
  'REJECTED',
  'REMOVED',
  'CANCELED',
];
export const ACTIVE_EXECUTION: readonly ExecutionStatus[] = ['QUEUED', 'IN_PROGRESS'];

export const isTerminalExecution = (status: ExecutionStatus) => TERMINAL_EXECUTION.includes(status);

/** Moves a device may ask for (UpdateJobExecution): from QUEUED or IN_PROGRESS only. */
const DEVICE_MOVES: Record<ExecutionStatus, readonly ExecutionStatus[]> = {
  QUEUED: ['IN_PROGRESS', 'SUCCEEDED', 'FAILED', 'REJECTED'],
  // IN_PROGRESS → IN_PROGRESS is a progress report (new statusDetails, new step timeout).
  IN_PROGRESS: ['IN_PROGRESS', 'SUCCEEDED', 'FAILED', 'REJECTED'],
  SUCCEEDED: [],
  FAILED: [],
  TIMED_OUT: [],
  REJECTED: [],
  REMOVED: [],
  CANCELED: [],
};

export function deviceMayMove(from: ExecutionStatus, to: ExecutionStatus): boolean {
  return DEVICE_MOVES[from].includes(to);
}

export const TERMINAL_JOB: readonly JobStatus[] = ['CANCELED', 'ABORTED', 'COMPLETED'];
/** Jobs whose rollout the scheduler looks at. */
export const LIVE_JOB: readonly JobStatus[] = ['SCHEDULED', 'IN_PROGRESS'];

const JOB_MOVES: Record<JobStatus, readonly JobStatus[]> = {
  SCHEDULED: ['IN_PROGRESS', 'CANCELED', 'DELETION_IN_PROGRESS'],
  IN_PROGRESS: ['COMPLETED', 'CANCELED', 'ABORTED', 'DELETION_IN_PROGRESS'],
  COMPLETED: ['DELETION_IN_PROGRESS'],
  CANCELED: ['DELETION_IN_PROGRESS'],
  ABORTED: ['DELETION_IN_PROGRESS'],
  DELETION_IN_PROGRESS: [],
};

export function jobMayMove(from: JobStatus, to: JobStatus): boolean {
  return JOB_MOVES[from].includes(to);
}

/** The failure kinds an abort or retry criterion names, for one terminal status. */
export function failureKind(status: ExecutionStatus): 'FAILED' | 'REJECTED' | 'TIMED_OUT' | undefined {
  return status === 'FAILED' || status === 'REJECTED' || status === 'TIMED_OUT' ? status : undefined;
}
