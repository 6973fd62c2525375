import type { Ctx, RegistryDeps } from '../deps.js';
import type { RegistryDevice } from '../device-repository.js';
import { type Pending, type PendingEvent, pendingEvent } from '../outbox.js';
import { toView } from '../view.js';

export const DEVICE_REGISTERED = 'io.kiot.device.registered';
export const DEVICE_UPDATED = 'io.kiot.device.updated';
export const DEVICE_DELETED = 'io.kiot.device.deleted';

/**
 * The event a change causes (subject = device id, data = the device as the change leaves it), built before
 * the write so that the write itself stores it in the document's outbox (outbox.ts).
 */
export function deviceEvent(
  type: string,
  after: RegistryDevice,
  at: Date,
  extra: Record<string, unknown> = {},
): PendingEvent {
  return pendingEvent(type, after._id, { ...toView(after), ...extra }, at);
}

/**
 * Tells the Broker what changed, right after the write that stored the event. The change and its event are
 * durable by then, so a sink that is down is not a failure of the request (failing it would make the client
 * retry a change that happened): the event stays in the document and a flush emits it later, same id.
 */
export async function announce(deps: RegistryDeps, ctx: Ctx, id: string, known?: Pending): Promise<void> {
  try {
    await deps.outbox.deliver(id, known);
  } catch (error) {
    ctx.logger.warn({ err: error, subject: id }, 'event not emitted yet; it stays pending for the outbox flush');
  }
}
