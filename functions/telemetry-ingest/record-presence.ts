import type { DeviceDirectory } from '../../shared/devices.js';
import type { HandlerContext } from '../../shared/function-app.js';
import { type DeviceMessage, type NoticeDeps, rejectVisibly, requireDevice } from './device-steps.js';
import type { PresenceRepository } from './presence-repository.js';

export interface PresenceMessage extends DeviceMessage {
  signal: 'connected' | 'disconnected';
}

export interface RecordPresenceDeps extends NoticeDeps {
  devices: DeviceDirectory;
  presence: PresenceRepository;
}

/**
 * A connect or disconnect (a session start, a clean disconnect or the last will) changes presence. It
 * needs no dedup: applying the same event twice is the same as once, and ordering is by event time.
 * Unknown devices are refused so that stray client ids do not fill Redis; a disabled device's
 * presence is still recorded (it is a fact, and the registry may be about to enable it).
 */
export function recordPresence(message: PresenceMessage, deps: RecordPresenceDeps, ctx: HandlerContext): Promise<void> {
  return rejectVisibly(message, deps, ctx, async () => {
    await requireDevice(message.deviceId, deps.devices, { active: false });
    await deps.presence.apply(message.deviceId, message.signal, message.receivedAt.getTime());
  });
}
