import type { RegistryDevice } from '../device-repository.js';
import type { Ctx, RegistryDeps } from '../deps.js';
import { toView } from '../view.js';

export const DEVICE_REGISTERED = 'io.kiot.device.registered';
export const DEVICE_UPDATED = 'io.kiot.device.updated';
export const DEVICE_DELETED = 'io.kiot.device.deleted';

/**
 * Tells the Broker what changed (subject = device id). The change is already durable in MongoDB and at the
 * broker, so a sink that stays down is logged, not turned into a failure of the request: failing it would
 * make the client retry a change that happened (a transactional outbox would close this gap). The id names
 * the change, so a consumer drops a duplicate.
 */
export async function announce(
  deps: RegistryDeps,
  ctx: Ctx,
  type: string,
  device: RegistryDevice,
  extra: Record<string, unknown> = {},
): Promise<void> {
  const change = type.split('.').pop();
  try {
    await deps.emitter.emit({
      type,
      subject: device._id,
      id: `${device._id}:${device.createdAt.getTime()}:${device.version}:${change}`,
      data: { ...toView(device), ...extra },
    });
  } catch (error) {
    ctx.logger.error({ err: error, type, subject: device._id }, 'event not emitted');
  }
}
