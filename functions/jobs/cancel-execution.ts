import { ConflictError, NotFoundError, PreconditionFailedError } from '../../shared/errors.js';
import type { Ctx, JobDeps } from './deps.js';
import { notifyDevices } from './device-messages.js';
import { drainIfIdle } from './end-job.js';
import type { ExecutionDocument } from './execution-repository.js';
import { isTerminalExecution } from './states.js';

/**
 * CancelJobExecution: a QUEUED execution becomes CANCELED; an IN_PROGRESS one only with `force` (the
 * device may be half-way through; it hears of it on `notify` and its next update is refused as
 * TerminalStateReached). `expectedVersion` guards against cancelling a state the caller has not seen.
 */
export async function cancelExecution(
  input: { jobId: string; deviceId: string; force: boolean; expectedVersion?: number },
  deps: JobDeps,
  ctx: Ctx,
): Promise<ExecutionDocument> {
  const execution = await deps.executions.get(input.jobId, input.deviceId);
  if (!execution) {
    throw new NotFoundError(`device ${input.deviceId} has no execution of job ${input.jobId}`, 'execution_not_found');
  }
  if (input.expectedVersion !== undefined && input.expectedVersion !== execution.versionNumber) {
    throw new PreconditionFailedError(`the execution is at version ${execution.versionNumber}`, {
      versionNumber: execution.versionNumber,
    });
  }
  if (isTerminalExecution(execution.status)) {
    throw new ConflictError(`the execution is ${execution.status}`, 'terminal_state_reached', {
      status: execution.status,
    });
  }
  if (execution.status === 'IN_PROGRESS' && !input.force) {
    throw new ConflictError('the execution is IN_PROGRESS: cancel it with force', 'execution_in_progress');
  }
  const now = deps.clock();
  const canceled = await deps.executions.compareAndSet(execution._id, execution.versionNumber, {
    $set: { status: 'CANCELED', lastUpdatedAt: now, completedAt: now },
    $unset: { timeoutAt: '' },
  });
  if (!canceled) throw new ConflictError('the execution changed meanwhile; read it and try again', 'version_conflict');
  await deps.jobs.record({
    jobId: input.jobId,
    at: now,
    kind: 'execution_canceled',
    details: { deviceId: input.deviceId, force: input.force },
  });
  if (execution.released) await notifyDevices([input.deviceId], deps, ctx);
  // Counted as outcomes are (record-outcome.ts), so a pass sees at once that nothing is left to run.
  await drainIfIdle(await deps.jobs.incrementCounts(input.jobId, { CANCELED: 1 }), deps);
  return canceled;
}
