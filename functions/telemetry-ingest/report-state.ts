import type { DeviceDirectory } from '../../shared/devices.js';
import type { HandlerContext } from '../../shared/function-app.js';
import { applyReport, checkStatePatch, type Shadow, type StateLimits } from '../../shared/shadow.js';
import { type ShadowStore, updateShadow } from '../../shared/shadow-store.js';
import type { AdmissionGate } from './admission.js';
import {
  admit,
  type DeviceMessage,
  type NoticeDeps,
  rejectVisibly,
  requireDevice,
  whileAdmitted,
} from './device-steps.js';

export interface StateMessage extends DeviceMessage {
  patch: unknown;
}

export interface ReportStateDeps extends NoticeDeps {
  admission: AdmissionGate;
  devices: DeviceDirectory;
  shadows: ShadowStore;
  limits: StateLimits;
  now(): number;
}

/**
 * A state report merged into the device shadow (shared/shadow.ts, shared with command-dispatch):
 * admitted once (a redelivered event is not merged again), checked (keys, depth, size), merged with
 * optimistic concurrency, committed to MongoDB before the 2xx (shared/shadow-store.ts), so a lost or
 * stale Redis is rebuilt from there. Too many writers in between → 409, which Knative retries with backoff.
 */
export function reportState(
  message: StateMessage,
  deps: ReportStateDeps,
  ctx: HandlerContext,
): Promise<Shadow | undefined> {
  return rejectVisibly(message, deps, ctx, async () => {
    if (!(await admit(message, deps.admission, deps.now(), deps.metrics))) return undefined;
    return whileAdmitted(message, deps.admission, ctx, async () => {
      await requireDevice(message.deviceId, deps.devices, { active: true });
      checkStatePatch(message.patch, deps.limits);
      const patch = message.patch;
      const at = message.receivedAt.getTime();
      // Presence: whileAdmitted's `complete` marks the device seen at its receive time, in the same round trip.
      return updateShadow(deps.shadows, message.deviceId, (current) => applyReport(current, patch, at, deps.limits));
    });
  });
}
