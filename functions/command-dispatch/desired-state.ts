import type { CloudEvent } from '../../shared/cloudevents.js';
import type { DeviceDirectory } from '../../shared/devices.js';
import type { Emitter } from '../../shared/emitter.js';
import { InvalidInputError } from '../../shared/errors.js';
import {
  applyDesired,
  checkStatePatch,
  computeDelta,
  type JsonObject,
  mergePatch,
  type Shadow,
  type StateLimits,
  statePatchIssues,
} from '../../shared/shadow.js';
import { type ShadowStore, updateShadow } from '../../shared/shadow-store.js';
import { requireActiveDevice } from './create-command.js';
import { type DeltaMemo, publishDelta } from './delta-publisher.js';

export interface DesiredStateDeps {
  devices: DeviceDirectory;
  shadows: ShadowStore;
  deltas: DeltaMemo;
  emitter: Emitter;
  limits: StateLimits;
  clock: () => Date;
}

/** What apps see of the shadow here; the ETag is the version. */
export function desiredView(shadow: Shadow) {
  return {
    deviceId: shadow.deviceId,
    desired: shadow.desired,
    reported: shadow.reported,
    delta: shadow.delta,
    version: shadow.version,
    timestamps: shadow.timestamps,
  };
}

/** `If-Match: "7"` (RFC 9110 §13.1.1; a weak `W/"7"` too); `*` or no header: no precondition. */
export function parseIfMatch(header: string | undefined): number | undefined {
  if (header === undefined || header.trim() === '*') return undefined;
  const match = /^\s*(?:W\/)?"?(\d{1,15})"?\s*$/.exec(header);
  if (!match)
    throw new InvalidInputError('If-Match must be the ETag of the shadow, e.g. "7"', undefined, 'invalid_if_match');
  return Number(match[1]);
}

/**
 * `PATCH /devices/{id}/state/desired`: a JSON merge patch (RFC 7386) of the desired state, on the
 * shadow version the app last saw (`If-Match`); then the delta goes out retained to the device.
 */
export async function patchDesiredState(
  input: { deviceId: string; patch: unknown; ifMatch?: string },
  deps: DesiredStateDeps,
): Promise<Shadow> {
  await requireActiveDevice(input.deviceId, deps);
  const patch = input.patch;
  checkStatePatch(patch, deps.limits);
  const at = deps.clock().getTime();
  const shadow = await updateShadow(
    deps.shadows,
    input.deviceId,
    (current) => applyDesired(current, patch, at, deps.limits),
    {
      ifMatch: parseIfMatch(input.ifMatch),
    },
  );
  await publishDelta(input.deviceId, shadow.delta, deps);
  return shadow;
}

export async function getDesiredState(deviceId: string, deps: DesiredStateDeps): Promise<Shadow> {
  await requireActiveDevice(deviceId, deps);
  return deps.shadows.load(deviceId);
}

/**
 * `io.kiot.state.reported`: the delta shrinks as the device reports. telemetry-ingest merges the report
 * into the shadow from the same event, in parallel and in no set order, so the delta is computed over
 * the stored reported state *with this report merged in* (a merge patch applied twice is applied once,
 * RFC 7386 §2). A device with nothing desired and nothing published costs one Redis read.
 */
export async function republishDelta(
  event: CloudEvent<unknown>,
  patch: unknown,
  deps: DesiredStateDeps,
): Promise<void> {
  const deviceId = event.subject;
  // telemetry-ingest refuses what is not an object or cannot be stored; there is no delta to derive from it.
  if (!deviceId || typeof patch !== 'object' || patch === null || Array.isArray(patch)) return;
  if (statePatchIssues(patch as JsonObject, deps.limits).length > 0) return;
  const shadow = await deps.shadows.load(deviceId);
  if (Object.keys(shadow.desired).length === 0 && (await deps.deltas.last(deviceId)) === null) return;
  const reported = mergePatch(shadow.reported, patch) as JsonObject;
  await publishDelta(deviceId, computeDelta(shadow.desired, reported), deps);
}
