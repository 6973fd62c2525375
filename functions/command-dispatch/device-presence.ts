import type { CloudEvent } from '../../shared/cloudevents.js';
import { InvalidInputError } from '../../shared/errors.js';
import type { HandlerContext } from '../../shared/function-app.js';
import type { CommandDeps } from './deps.js';
import { sendCommand } from './delivery.js';
import { recordTransition } from './record-transition.js';

/** The device of a presence event: the subject (ARCHITECTURE.md), else `data.deviceId`. */
function deviceOf(event: CloudEvent<unknown>, data: { deviceId?: string } | null | undefined): string {
  const deviceId = event.subject ?? data?.deviceId;
  if (!deviceId) throw new InvalidInputError('the presence event names no device (subject)', undefined, 'invalid_presence');
  return deviceId;
}

/** The event time orders connects and disconnects that the Broker delivers out of order. */
function eventMillis(event: CloudEvent<unknown>, deps: CommandDeps): number {
  const parsed = event.time ? Date.parse(event.time) : Number.NaN;
  return Number.isFinite(parsed) ? parsed : deps.clock().getTime();
}

/** `io.kiot.device.connected`: record presence, then send what waited for the device. */
export async function deviceConnected(event: CloudEvent<unknown>, data: { deviceId?: string } | null | undefined, deps: CommandDeps, ctx: HandlerContext): Promise<void> {
  const deviceId = deviceOf(event, data);
  const current = await deps.presence.record(deviceId, true, eventMillis(event, deps));
  // A disconnect newer than this connect was already seen: the device is gone again.
  if (!current) return;
  await flushDevice(deviceId, deps, ctx);
}

export async function deviceDisconnected(event: CloudEvent<unknown>, data: { deviceId?: string } | null | undefined, deps: CommandDeps): Promise<void> {
  await deps.presence.record(deviceOf(event, data), false, eventMillis(event, deps));
}

export interface FlushResult {
  sent: number;
  resent: number;
  expired: number;
}

/**
 * Sends a device's waiting commands oldest first: QUEUED ones, and SENT ones the device never
 * answered (it may have lost them with its session) up to `maxResends` times. Expired ones are moved to
 * EXPIRED and never sent. Sends are sequential so they reach the Broker in queue order.
 */
export async function flushDevice(deviceId: string, deps: CommandDeps, ctx: HandlerContext): Promise<FlushResult> {
  const result: FlushResult = { sent: 0, resent: 0, expired: 0 };
  const pending = await deps.commands.pendingForDevice(deviceId, deps.settings.queueCap * 2);
  for (const command of pending) {
    const now = deps.clock();
    if (command.expiresAt <= now) {
      if (command.status === 'QUEUED' && (await recordTransition(deps, command._id, 'EXPIRED', { at: now, set: { completedAt: now } }, ctx))) {
        result.expired += 1;
      }
      continue;
    }
    if (command.status === 'QUEUED') {
      if (await sendCommand(command, deps, ctx)) result.sent += 1;
    } else if (command.attempts <= deps.settings.maxResends) {
      if (await sendCommand(command, deps, ctx)) result.resent += 1;
    }
  }
  return result;
}
