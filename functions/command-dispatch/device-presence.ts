import type { CloudEvent } from '../../shared/cloudevents.js';
import { InvalidInputError } from '../../shared/errors.js';
import type { HandlerContext } from '../../shared/function-app.js';
import type { CommandDeps } from './deps.js';
import { flushDevice } from './device-queue.js';

/** The device of a presence event: the subject (docs/architecture.md), else `data.deviceId`. */
function deviceOf(event: CloudEvent<unknown>, data: { deviceId?: string } | null | undefined): string {
  const deviceId = event.subject ?? data?.deviceId;
  if (!deviceId)
    throw new InvalidInputError('the presence event names no device (subject)', undefined, 'invalid_presence');
  return deviceId;
}

/** The event time orders connects and disconnects that the Broker delivers out of order. */
function eventMillis(event: CloudEvent<unknown>, deps: CommandDeps): number {
  const parsed = event.time ? Date.parse(event.time) : Number.NaN;
  return Number.isFinite(parsed) ? parsed : deps.clock().getTime();
}

/** `io.kiot.device.connected`: record presence, then send what waited for the device. */
export async function deviceConnected(
  event: CloudEvent<unknown>,
  data: { deviceId?: string } | null | undefined,
  deps: CommandDeps,
  ctx: HandlerContext,
): Promise<void> {
  const deviceId = deviceOf(event, data);
  const current = await deps.presence.record(deviceId, true, eventMillis(event, deps));
  // A disconnect newer than this connect was already seen: the device is gone again.
  if (!current) return;
  await flushDevice(deviceId, deps, ctx);
}

export async function deviceDisconnected(
  event: CloudEvent<unknown>,
  data: { deviceId?: string } | null | undefined,
  deps: CommandDeps,
): Promise<void> {
  await deps.presence.record(deviceOf(event, data), false, eventMillis(event, deps));
}
