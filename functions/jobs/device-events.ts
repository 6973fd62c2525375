import type { Ctx, JobDeps } from './deps.js';
import { notifyDevices } from './device-messages.js';
import { drainIfIdle } from './end-job.js';
import { newExecutions } from './execution-repository.js';
import { deviceMatches, type TargetDevice } from './targets.js';

/**
 * Registry and presence events the jobs service follows:
 * - `io.kiot.device.connected`: a device that was offline hears what is pending for it (its executions
 *   waited for it; nothing is lost while a device is away).
 * - `io.kiot.device.registered` / `updated`: a device that now matches a CONTINUOUS job joins it (a new
 *   QUEUED execution the rollout releases in its turn); `io.kiot.device.registered.batch` (a bulk registration,
 *   shared/device-batch.ts) does the same for many devices at once.
 * - `io.kiot.device.deleted`: its active executions become REMOVED.
 */
export async function deviceConnected(deviceId: string, deps: JobDeps, ctx: Ctx): Promise<void> {
  await notifyDevices([deviceId], deps, ctx, { onlyIfPending: true });
}

export async function deviceChanged(device: TargetDevice, deps: JobDeps, ctx: Ctx): Promise<void> {
  await devicesChanged([device], deps, ctx);
}

/**
 * Devices registered or changed (one event, or a bulk registration's batch): each CONTINUOUS job gains those of
 * them it targets and does not hold yet, in one insert; their release order follows the job's last one.
 */
export async function devicesChanged(devices: readonly TargetDevice[], deps: JobDeps, ctx: Ctx): Promise<void> {
  const jobs = await deps.jobs.continuous();
  for (const job of jobs) {
    const matching = devices.filter((device) => deviceMatches(job.targets, device)).map((device) => device.id);
    if (matching.length === 0) continue;
    const present = await deps.executions.devicesIn(job._id, matching);
    const joining = [...new Set(matching.filter((id) => !present.has(id)))];
    if (joining.length === 0) continue;
    const seq = await deps.jobs.reserveSeq(job._id, joining.length);
    const added = await deps.executions.insertMany(newExecutions(job._id, joining, seq, deps.clock()));
    if (added > 0) ctx.logger.info({ jobId: job._id, devices: added }, 'devices joined a continuous job');
  }
}

export async function deviceDeleted(deviceId: string, deps: JobDeps, ctx: Ctx): Promise<void> {
  const jobIds = await deps.executions.removeDevice(deviceId, deps.clock());
  for (const jobId of jobIds) await drainIfIdle(await deps.jobs.incrementCounts(jobId, { REMOVED: 1 }), deps);
  if (jobIds.length > 0) ctx.logger.info({ deviceId, jobIds }, 'executions of a deleted device removed');
}
