import { PreconditionFailedError } from '../../../shared/errors.js';
import type { Ctx, RegistryDeps } from '../deps.js';
import type { RegistryDevice } from '../device-repository.js';
import type { UpdateDeviceInput } from '../schema.js';
import { announce, DEVICE_UPDATED, deviceEvent } from './announce.js';
import { loadDevice } from './query-devices.js';

/**
 * PATCH with optimistic concurrency: the update applies only to the version the client read (If-Match).
 * When the status is given the broker is brought to it — a disable before MongoDB, an enable after — so the
 * broker is never more permissive than the registry, whatever fails in between.
 */
export async function updateDevice(
  input: { id: string; version: number; patch: UpdateDeviceInput },
  deps: RegistryDeps,
  ctx: Ctx,
): Promise<RegistryDevice> {
  const current = await loadDevice(input.id, deps);
  assertVersion(current, input.version);
  const { status } = input.patch;
  if (status === 'disabled') await deps.broker.setEnabled(current._id, false);

  const now = deps.now();
  const set = { ...input.patch, updatedAt: now };
  // The event is stored by the update itself (outbox.ts), so it describes the version this write makes.
  const event = deviceEvent(DEVICE_UPDATED, { ...current, ...set, version: input.version + 1 }, now, {
    changed: Object.keys(input.patch),
  });
  const updated = await deps.devices.update(current._id, input.version, set, event);
  if (!updated) {
    // Someone else changed it between our read and our write: put the broker back to what the registry says.
    const fresh = await loadDevice(input.id, deps);
    if (status !== undefined) await deps.broker.setEnabled(fresh._id, fresh.status === 'active');
    throw new PreconditionFailedError(`device ${fresh._id} changed meanwhile, now at version ${fresh.version}`, {
      version: fresh.version,
    });
  }
  if (status === 'active') await deps.broker.setEnabled(updated._id, true);
  if (status !== undefined) await deps.authCache.invalidate([updated._id]);
  await announce(deps, ctx, updated._id, {
    events: updated.pendingEvents ?? [],
    tombstone: false,
    registration: updated.registeredIn,
  });
  return updated;
}

function assertVersion(device: RegistryDevice, version: number): void {
  if (device.version !== version) {
    throw new PreconditionFailedError(`device ${device._id} is at version ${device.version}, not ${version}`, {
      version: device.version,
    });
  }
}
