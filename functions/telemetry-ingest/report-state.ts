import type { DeviceDirectory } from '../../shared/devices.js';
import type { HandlerContext } from '../../shared/function-app.js';
import type { AdmissionGate } from './admission.js';
import { admit, rejectVisibly, requireDevice, whileAdmitted, type DeviceMessage, type NoticeDeps } from './device-steps.js';
import type { PresenceRepository } from './presence-repository.js';
import { ConflictError } from '../../shared/errors.js';
import type { ShadowRepository } from './shadow-repository.js';
import { applyReport, checkStatePatch, type Shadow, type StateLimits } from './shadow.js';

export interface StateMessage extends DeviceMessage {
  patch: unknown;
}

export interface ReportStateDeps extends NoticeDeps {
  admission: AdmissionGate;
  devices: DeviceDirectory;
  shadows: ShadowRepository;
  presence: PresenceRepository;
  limits: StateLimits;
  now(): number;
}

const MAX_ATTEMPTS = 8;

/**
 * A state report merged into the device shadow: admitted once, checked (keys, depth, size), merged
 * with optimistic concurrency in Redis (another report of the same device in between → merge again
 * on top of it), then persisted to MongoDB before the 2xx, so a lost Redis is rebuilt from there.
 */
export function reportState(message: StateMessage, deps: ReportStateDeps, ctx: HandlerContext): Promise<Shadow | undefined> {
  return rejectVisibly(message, deps, ctx, async () => {
    if (!(await admit(message, deps.admission, deps.now(), deps.metrics))) return undefined;
    return whileAdmitted(message, deps.admission, ctx, async () => {
      await requireDevice(message.deviceId, deps.devices, { active: true });
      checkStatePatch(message.patch, deps.limits);
      const shadow = await mergeIntoShadow(message, message.patch, deps);
      await deps.shadows.persist(shadow);
      await deps.presence.apply(message.deviceId, 'seen', message.receivedAt.getTime());
      return shadow;
    });
  });
}

async function mergeIntoShadow(message: StateMessage, patch: Record<string, unknown>, deps: ReportStateDeps): Promise<Shadow> {
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt += 1) {
    const current = await deps.shadows.load(message.deviceId);
    const next = applyReport(current, patch, message.receivedAt.getTime(), deps.limits);
    if (await deps.shadows.compareAndSet(next, current.version)) return next;
  }
  // 409 is retried by Knative with backoff, by which time the burst of reports has passed.
  throw new ConflictError(`the shadow of ${message.deviceId} changed ${MAX_ATTEMPTS} times while merging`, 'shadow_contended');
}
