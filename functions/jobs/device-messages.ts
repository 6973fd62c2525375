import type { Ctx, JobDeps } from './deps.js';
import type { DeviceMessage } from './device-publisher.js';
import { notifyNextTopic, notifyTopic } from './device-topics.js';
import type { ExecutionDocument } from './execution-repository.js';
import { jobConfigOf } from './job-config.js';
import type { ExecutionStatus } from './schema.js';

export type { DeviceMessage } from './device-publisher.js';

/** The summary AWS IoT Jobs calls JobExecutionSummary: what `notify` and `get` list. */
export function executionSummary(execution: ExecutionDocument) {
  return {
    jobId: execution.jobId,
    queuedAt: execution.queuedAt.toISOString(),
    ...(execution.startedAt ? { startedAt: execution.startedAt.toISOString() } : {}),
    lastUpdatedAt: execution.lastUpdatedAt.toISOString(),
    versionNumber: execution.versionNumber,
    executionNumber: execution.executionNumber,
  };
}

/** The execution as the device sees it (AWS JobExecution), with the job document when asked. */
export function deviceExecution(execution: ExecutionDocument, jobDocument?: Record<string, unknown>) {
  return {
    jobId: execution.jobId,
    deviceId: execution.deviceId,
    status: execution.status,
    ...(execution.statusDetails ? { statusDetails: execution.statusDetails } : {}),
    queuedAt: execution.queuedAt.toISOString(),
    ...(execution.startedAt ? { startedAt: execution.startedAt.toISOString() } : {}),
    lastUpdatedAt: execution.lastUpdatedAt.toISOString(),
    versionNumber: execution.versionNumber,
    executionNumber: execution.executionNumber,
    ...(jobDocument ? { jobDocument } : {}),
  };
}

/** The state part of an answer (AWS JobExecutionState). */
export function executionState(execution: ExecutionDocument) {
  return {
    status: execution.status,
    ...(execution.statusDetails ? { statusDetails: execution.statusDetails } : {}),
    versionNumber: execution.versionNumber,
    executionNumber: execution.executionNumber,
  };
}

export async function jobDocumentOf(jobId: string, deps: JobDeps): Promise<Record<string, unknown> | undefined> {
  return (await jobConfigOf(jobId, deps))?.document;
}

/** Publishes to devices (deps.devicePublisher: straight to the broker, or through the Broker and the bridge). */
export async function publishToDevices(messages: readonly DeviceMessage[], deps: JobDeps, _ctx: Ctx): Promise<void> {
  await deps.devicePublisher.publish(messages);
}

/** The `notify` and `notify-next` messages for a device, from its pending executions (oldest first). */
export async function pendingMessages(
  deviceId: string,
  pending: readonly ExecutionDocument[],
  deps: JobDeps,
  options: { onlyIfPending?: boolean } = {},
): Promise<DeviceMessage[]> {
  if (options.onlyIfPending && pending.length === 0) return [];
  const timestamp = deps.clock().toISOString();
  const inProgress = pending.filter((execution) => execution.status === 'IN_PROGRESS');
  const queued = pending.filter((execution) => execution.status === 'QUEUED');
  const next = inProgress[0] ?? queued[0];
  const jobs = {
    ...(inProgress.length > 0 ? { IN_PROGRESS: inProgress.map(executionSummary) } : {}),
    ...(queued.length > 0 ? { QUEUED: queued.map(executionSummary) } : {}),
  };
  const document = next ? await jobDocumentOf(next.jobId, deps) : undefined;
  return [
    { deviceId, topic: notifyTopic(deviceId), payload: { timestamp, jobs } },
    {
      deviceId,
      topic: notifyNextTopic(deviceId),
      payload: { timestamp, ...(next ? { execution: deviceExecution(next, document) } : {}) },
    },
  ];
}

const ACTIVE = ['QUEUED', 'IN_PROGRESS'] as const;

/**
 * Each device's released executions in these statuses (QUEUED and IN_PROGRESS by default), oldest first: the
 * executions of the jobs that may still have active ones, by `_id` (`{jobId}:{deviceId}`), in one query for all the
 * devices — a release wave's thousand devices cost one look-up of each, never a scan of the executions.
 */
export async function pendingOf(
  deviceIds: readonly string[],
  deps: JobDeps,
  statuses: readonly ExecutionStatus[] = ACTIVE,
): Promise<Map<string, ExecutionDocument[]>> {
  const jobIds = await deps.jobs.mayHaveActive();
  return deps.executions.listForDevices(jobIds, deviceIds, statuses);
}

/** One device's pending executions (see `pendingOf`). */
export async function pendingOfDevice(deviceId: string, deps: JobDeps): Promise<ExecutionDocument[]> {
  return (await pendingOf([deviceId], deps)).get(deviceId) ?? [];
}

/** Tells each device its pending executions (after a release, a cancel, a reconnect). */
export async function notifyDevices(
  deviceIds: readonly string[],
  deps: JobDeps,
  ctx: Ctx,
  options: { onlyIfPending?: boolean } = {},
): Promise<void> {
  const pending = await pendingOf([...new Set(deviceIds)], deps);
  const messages: DeviceMessage[] = [];
  for (const [deviceId, executions] of pending) {
    messages.push(...(await pendingMessages(deviceId, executions, deps, options)));
  }
  await publishToDevices(messages, deps, ctx);
}
