import type { Ctx, RegistryDeps } from '../deps.js';
import { DEVICE_DELETED, announce } from './announce.js';
import { loadDevice } from './query-devices.js';

/**
 * Broker first: deleting the client there ends its access and kicks its connection at once; then the
 * registry. A failure in between leaves a registry entry without broker access, and a retried DELETE
 * finishes the job (deleting a client the broker no longer has is success).
 */
export async function deleteDevice(id: string, deps: RegistryDeps, ctx: Ctx): Promise<void> {
  const device = await loadDevice(id, deps);
  await deps.broker.remove(device._id);
  await deps.devices.remove(device._id);
  await deps.authCache.invalidate([device._id]);
  await announce(deps, ctx, DEVICE_DELETED, { ...device, version: device.version + 1 });
}
