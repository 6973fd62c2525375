import { DependencyUnavailableError } from '../../../shared/errors.js';
import type { Ctx, RegistryDeps } from '../deps.js';
import { announce, DEVICE_DELETED, deviceEvent } from './announce.js';
import { loadDevice } from './query-devices.js';

/**
 * Broker first: deleting the client there ends its access and kicks its connection at once; then the
 * registry, where one write turns the document into a tombstone holding `io.kiot.device.deleted` (outbox.ts);
 * the tombstone goes once the event is out. A failure in between leaves a registry entry without broker
 * access, and a retried DELETE finishes the job (deleting a client the broker no longer has is success).
 */
export async function deleteDevice(id: string, deps: RegistryDeps, ctx: Ctx): Promise<void> {
  let device = await loadDevice(id, deps);
  await deps.broker.remove(device._id);
  // The event carries the device as it was; a concurrent PATCH between read and write means read again.
  for (let attempt = 0; attempt < 5; attempt += 1) {
    if (attempt > 0) device = await loadDevice(id, deps);
    const now = deps.now();
    const event = deviceEvent(DEVICE_DELETED, { ...device, version: device.version + 1 }, now);
    const tombstone = await deps.devices.tombstone(device._id, device.version, event, now);
    if (tombstone) {
      await deps.authCache.invalidate([device._id]);
      await announce(deps, ctx, device._id, tombstone);
      return;
    }
  }
  throw new DependencyUnavailableError('mongodb', new Error('device kept changing during delete'));
}
