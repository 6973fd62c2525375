import type { z } from 'zod';
import { zodIssues } from '../../shared/errors.js';
import type { Ctx, JobDeps } from './deps.js';
import {
  type DeviceMessage,
  deviceExecution,
  executionState,
  executionSummary,
  jobDocumentOf,
  pendingMessages,
  pendingOfDevice,
  publishToDevices,
} from './device-messages.js';
import { type DeviceRequest, requestTopic } from './device-topics.js';
import type { ExecutionDocument } from './execution-repository.js';
import { jobConfigOf } from './job-config.js';
import { recordOutcome } from './record-outcome.js';
import { getRequestSchema, startNextRequestSchema, type UpdateRequest, updateRequestSchema } from './schema.js';
import { deviceMayMove, isTerminalExecution } from './states.js';

/**
 * The four device requests over MQTT. Every request is answered on `<request topic>/accepted` or
 * `/rejected` (AWS IoT Jobs' error codes: InvalidRequest, InvalidJson, ResourceNotFound, VersionMismatch,
 * InvalidStateTransition, TerminalStateReached). A device only ever sees its own executions: the device id
 * comes from the topic, which the broker's ACL ties to the device's credential, and a job it is not part of
 * (or not yet released to it) is ResourceNotFound.
 */
export interface DeviceRequestInput {
  deviceId: string;
  request: DeviceRequest;
  jobId?: string;
  payload: Record<string, unknown>;
}

type RejectCode =
  | 'InvalidRequest'
  | 'ResourceNotFound'
  | 'VersionMismatch'
  | 'InvalidStateTransition'
  | 'TerminalStateReached';

export async function handleDeviceRequest(input: DeviceRequestInput, deps: JobDeps, ctx: Ctx): Promise<void> {
  const topic = requestTopic(input.deviceId, input.request, input.jobId);
  const clientToken = typeof input.payload.clientToken === 'string' ? input.payload.clientToken : undefined;
  const reply = (outcome: 'accepted' | 'rejected', body: Record<string, unknown>): DeviceMessage => ({
    deviceId: input.deviceId,
    topic: `${topic}/${outcome}`,
    payload: { ...body, timestamp: deps.clock().toISOString(), ...(clientToken ? { clientToken } : {}) },
  });
  const reject = (code: RejectCode, message: string, extra: Record<string, unknown> = {}) =>
    reply('rejected', { code, message, ...extra });
  const invalid = (error: z.ZodError) =>
    reject('InvalidRequest', 'the request does not match its schema', { details: zodIssues(error) });

  let messages: DeviceMessage[];
  switch (input.request) {
    case 'get': {
      const parsed = getRequestSchema.safeParse(input.payload);
      if (!parsed.success) {
        messages = [invalid(parsed.error)];
        break;
      }
      const pending = await pendingOfDevice(input.deviceId, deps);
      messages = [
        reply('accepted', {
          inProgressJobs: pending.filter((e) => e.status === 'IN_PROGRESS').map(executionSummary),
          queuedJobs: pending.filter((e) => e.status === 'QUEUED').map(executionSummary),
        }),
      ];
      break;
    }
    case 'start-next': {
      const parsed = startNextRequestSchema.safeParse(input.payload);
      messages = parsed.success
        ? [reply('accepted', await startNext(input.deviceId, parsed.data, deps))]
        : [invalid(parsed.error)];
      break;
    }
    case 'describe': {
      const parsed = getRequestSchema.safeParse(input.payload);
      if (!parsed.success) {
        messages = [invalid(parsed.error)];
        break;
      }
      const execution = await visibleExecution(input.jobId!, input.deviceId, deps);
      messages = execution
        ? [
            reply('accepted', {
              execution: deviceExecution(
                execution,
                parsed.data.includeJobDocument ? await jobDocumentOf(execution.jobId, deps) : undefined,
              ),
            }),
          ]
        : [reject('ResourceNotFound', `no execution of job ${input.jobId} for this device`)];
      break;
    }
    case 'update': {
      const parsed = updateRequestSchema.safeParse(input.payload);
      messages = parsed.success
        ? await update(input.deviceId, input.jobId!, parsed.data, deps, ctx, reply, reject)
        : [invalid(parsed.error)];
      break;
    }
  }
  await publishToDevices(messages, deps, ctx);
}

async function visibleExecution(jobId: string, deviceId: string, deps: JobDeps) {
  const execution = await deps.executions.get(jobId, deviceId);
  return execution?.released ? execution : undefined;
}

/** The earlier of the step timeout (from now) and the job's in-progress timeout (from the start). */
function timeoutAt(now: Date, startedAt: Date, stepMinutes?: number, jobMinutes?: number): Date | undefined {
  const deadlines = [
    stepMinutes === undefined ? undefined : now.getTime() + stepMinutes * 60_000,
    jobMinutes === undefined ? undefined : startedAt.getTime() + jobMinutes * 60_000,
  ].filter((t): t is number => t !== undefined);
  return deadlines.length === 0 ? undefined : new Date(Math.min(...deadlines));
}

/**
 * StartNextPendingJobExecution: the execution IN_PROGRESS if there is one, else the oldest QUEUED one moved
 * to IN_PROGRESS by a compare-and-set (two instances racing for it: one wins, the other takes the next).
 */
async function startNext(
  deviceId: string,
  request: z.infer<typeof startNextRequestSchema>,
  deps: JobDeps,
): Promise<Record<string, unknown>> {
  for (let attempt = 0; attempt < 5; attempt += 1) {
    const pending = await pendingOfDevice(deviceId, deps);
    const running = pending.find((e) => e.status === 'IN_PROGRESS');
    const next = running ?? pending.find((e) => e.status === 'QUEUED');
    if (!next) return {};
    const document = await jobDocumentOf(next.jobId, deps);
    if (running) return { execution: deviceExecution(running, document) };
    const started = await start(next, request.statusDetails, request.stepTimeoutInMinutes, deps);
    if (started) return { execution: deviceExecution(started, document) };
  }
  return {};
}

async function start(
  execution: ExecutionDocument,
  statusDetails: Record<string, string> | undefined,
  stepMinutes: number | undefined,
  deps: JobDeps,
): Promise<ExecutionDocument | undefined> {
  const config = await jobConfigOf(execution.jobId, deps);
  const now = deps.clock();
  const deadline = timeoutAt(now, now, stepMinutes, config?.timeout?.inProgressTimeoutInMinutes);
  // The version read with status QUEUED: every change of status bumps it, so a match is still QUEUED.
  return deps.executions.compareAndSet(execution._id, execution.versionNumber, {
    $set: {
      status: 'IN_PROGRESS',
      startedAt: now,
      lastUpdatedAt: now,
      ...(statusDetails ? { statusDetails } : {}),
      ...(deadline ? { timeoutAt: deadline } : {}),
    },
  });
}

async function update(
  deviceId: string,
  jobId: string,
  request: UpdateRequest,
  deps: JobDeps,
  ctx: Ctx,
  reply: (outcome: 'accepted' | 'rejected', body: Record<string, unknown>) => DeviceMessage,
  reject: (code: RejectCode, message: string, extra?: Record<string, unknown>) => DeviceMessage,
): Promise<DeviceMessage[]> {
  for (let attempt = 0; attempt < 5; attempt += 1) {
    const execution = await visibleExecution(jobId, deviceId, deps);
    if (!execution) return [reject('ResourceNotFound', `no execution of job ${jobId} for this device`)];
    const state = { executionState: executionState(execution) };
    if (request.expectedVersion !== undefined && request.expectedVersion !== execution.versionNumber) {
      return [reject('VersionMismatch', `the execution is at version ${execution.versionNumber}`, state)];
    }
    if (request.executionNumber !== undefined && request.executionNumber !== execution.executionNumber) {
      return [reject('VersionMismatch', `the execution is at attempt ${execution.executionNumber}`, state)];
    }
    if (isTerminalExecution(execution.status)) {
      return [reject('TerminalStateReached', `the execution is ${execution.status}`, state)];
    }
    if (!deviceMayMove(execution.status, request.status)) {
      return [reject('InvalidStateTransition', `${execution.status} cannot become ${request.status}`, state)];
    }
    const written =
      request.status === 'IN_PROGRESS'
        ? await progress(execution, request, deps)
        : (await recordOutcome(execution, request.status, request.statusDetails, deps, ctx)).execution;
    if (!written) {
      // Another writer moved it first: a device that named a version gets the mismatch, else decide again.
      if (request.expectedVersion !== undefined) {
        const current = await visibleExecution(jobId, deviceId, deps);
        return [
          reject('VersionMismatch', 'the execution changed meanwhile', {
            ...(current ? { executionState: executionState(current) } : {}),
          }),
        ];
      }
      continue;
    }
    const answer = reply('accepted', {
      ...(request.includeJobExecutionState ? { executionState: executionState(written) } : {}),
      ...(request.includeJobDocument ? { jobDocument: await jobDocumentOf(jobId, deps) } : {}),
    });
    if (written.status === 'IN_PROGRESS') return [answer];
    // The pending list changed. Told only when something is still pending (its next job, or a retry of this
    // one): a device that has nothing left learns that from the answer.
    const pending = await pendingOfDevice(deviceId, deps);
    return [answer, ...(await pendingMessages(deviceId, pending, deps, { onlyIfPending: true }))];
  }
  return [reject('InvalidRequest', 'the execution is changing too fast; try again')];
}

/** QUEUED → IN_PROGRESS, or a progress report on IN_PROGRESS (new details, a new step timeout). */
async function progress(execution: ExecutionDocument, request: UpdateRequest, deps: JobDeps) {
  if (execution.status === 'QUEUED') return start(execution, request.statusDetails, request.stepTimeoutInMinutes, deps);
  const now = deps.clock();
  const config = await jobConfigOf(execution.jobId, deps);
  const deadline =
    request.stepTimeoutInMinutes === undefined
      ? undefined
      : timeoutAt(
          now,
          execution.startedAt ?? now,
          request.stepTimeoutInMinutes,
          config?.timeout?.inProgressTimeoutInMinutes,
        );
  return deps.executions.compareAndSet(execution._id, execution.versionNumber, {
    $set: {
      lastUpdatedAt: now,
      ...(request.statusDetails ? { statusDetails: request.statusDetails } : {}),
      ...(deadline ? { timeoutAt: deadline } : {}),
    },
  });
}
