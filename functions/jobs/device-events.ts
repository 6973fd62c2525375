import type { Ctx, JobDeps } from './deps.js';
import { notifyDevices } from './device-messages.js';
import { newExecutions } from './execution-repository.js';
import { deviceMatches, type TargetDevice } from './targets.js';

/**
 * Registry and presence events the jobs service follows:
 * - `io.kiot.device.connected`: a device that was offline hears what is pending for it (its executions
 *   waited for it; nothing is lost while a device is away).
 * - `io.kiot.device.registered` / `updated`: a device that now matches a CONTINUOUS job joins it (a new
 *   QUEUED execution the rollout releases in its turn).
 * - `io.kiot.device.deleted`: its active executions become REMOVED.
 */
export async function deviceConnected(deviceId: string, deps: JobDeps, ctx: Ctx): Promise<void> {
  await notifyDevices([deviceId], deps, ctx, { onlyIfPending: true });
}

export async function deviceChanged(device: TargetDevice, deps: JobDeps, ctx: Ctx): Promise<void> {
  const jobs = await deps.jobs.continuous();
  for (const job of jobs) {
    if (!deviceMatches(job.targets, device)) continue;
    if (await deps.executions.get(job._id, device.id)) continue;
    const seq = await deps.jobs.reserveSeq(job._id, 1);
    const added = await deps.executions.insertMany(newExecutions(job._id, [device.id], seq, deps.clock()));
    if (added > 0) ctx.logger.info({ jobId: job._id, deviceId: device.id }, 'device joined a continuous job');
  }
}

export async function deviceDeleted(deviceId: string, deps: JobDeps, ctx: Ctx): Promise<void> {
  const jobIds = await deps.executions.removeDevice(deviceId, deps.clock());
  if (jobIds.length > 0) ctx.logger.info({ deviceId, jobIds }, 'executions of a deleted device removed');
}
