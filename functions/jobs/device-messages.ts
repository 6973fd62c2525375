import type { Ctx, JobDeps } from './deps.js';
import type { DeviceMessage } from './device-publisher.js';
import { notifyNextTopic, notifyTopic } from './device-topics.js';
import type { ExecutionDocument } from './execution-repository.js';
import { jobConfigOf } from './job-config.js';

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

/** Tells each device its pending executions (after a release, a cancel, a reconnect). */
export async function notifyDevices(
  deviceIds: readonly string[],
  deps: JobDeps,
  ctx: Ctx,
  options: { onlyIfPending?: boolean } = {},
): Promise<void> {
  const messages: DeviceMessage[] = [];
  let next = 0;
  const worker = async () => {
    while (next < deviceIds.length) {
      const deviceId = deviceIds[next++]!;
      const pending = await deps.executions.listForDevice(deviceId, ['QUEUED', 'IN_PROGRESS']);
      messages.push(...(await pendingMessages(deviceId, pending, deps, options)));
    }
  };
  await Promise.all(Array.from({ length: Math.min(16, deviceIds.length) }, worker));
  await publishToDevices(messages, deps, ctx);
}
