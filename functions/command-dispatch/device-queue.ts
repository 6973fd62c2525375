import type { HandlerContext } from '../../shared/function-app.js';
import type { CommandDocument } from './command-repository.js';
import { sendCommand } from './delivery.js';
import type { CommandDeps } from './deps.js';
import { recordTransition } from './record-transition.js';

/**
 * A device's backlog goes out one command at a time: the next QUEUED command is sent once the device
 * has accepted (or answered) the one before. The Knative Broker fans events out concurrently and
 * does not keep their order (nor does the local router), so sending a backlog in one burst would
 * reach the device shuffled. Waiting for each ack keeps queue order, like ThingsBoard's sequential
 * RPC mode; a device that never answers holds the queue only until its command's deadline
 * (TIMED_OUT, then the sweep moves on).
 */
export interface QueueProgress {
  sent: number;
  resent: number;
  expired: number;
}

/** Sends the oldest QUEUED command unless one is in flight (SENT, not yet accepted). */
export async function dispatchNext(deviceId: string, deps: CommandDeps, ctx: HandlerContext): Promise<QueueProgress> {
  const progress: QueueProgress = { sent: 0, resent: 0, expired: 0 };
  const pending = await deps.commands.pendingForDevice(deviceId, deps.settings.queueCap + 1);
  if (pending.some((command) => command.status === 'SENT')) return progress;
  await sendOldestQueued(pending, progress, deps, ctx);
  return progress;
}

/**
 * On (re)connect: first the commands sent before but never accepted (the device may have lost them
 * with its session; it dedupes by command id), each at most `maxResends` times; then, if nothing is in
 * flight any more, the oldest QUEUED one.
 */
export async function flushDevice(deviceId: string, deps: CommandDeps, ctx: HandlerContext): Promise<QueueProgress> {
  const progress: QueueProgress = { sent: 0, resent: 0, expired: 0 };
  const pending = await deps.commands.pendingForDevice(deviceId, deps.settings.queueCap + 1);
  let inFlight = false;
  for (const command of pending.filter((c) => c.status === 'SENT')) {
    inFlight = true;
    // Expired ones are never sent again; their deadline ends them (TIMED_OUT).
    if (command.expiresAt <= deps.clock() || command.attempts > deps.settings.maxResends) continue;
    if (await sendCommand(command, deps, ctx)) progress.resent += 1;
  }
  if (!inFlight) await sendOldestQueued(pending, progress, deps, ctx);
  return progress;
}

async function sendOldestQueued(
  pending: CommandDocument[],
  progress: QueueProgress,
  deps: CommandDeps,
  ctx: HandlerContext,
) {
  for (const command of pending) {
    if (command.status !== 'QUEUED') continue;
    const now = deps.clock();
    if (command.expiresAt <= now) {
      // TTL passed before the device came back: never sent.
      if (await recordTransition(deps, command._id, 'EXPIRED', { at: now, set: { completedAt: now } }, ctx))
        progress.expired += 1;
      continue;
    }
    if (await sendCommand(command, deps, ctx)) progress.sent += 1;
    return;
  }
}
