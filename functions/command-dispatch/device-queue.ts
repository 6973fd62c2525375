import type { HandlerContext } from '../../shared/function-app.js';
import type { CommandDocument } from './command-repository.js';
import { sendCommand } from './delivery.js';
import type { CommandDeps } from './deps.js';
import { recordTransition } from './record-transition.js';
import { overdueStatus, settleOverdue } from './settle-overdue.js';

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

/**
 * Sends the oldest QUEUED command unless one is in flight (SENT, not yet accepted). One in flight past its
 * deadline is settled (TIMED_OUT) first: it no longer holds the queue, whether or not a sweep ran.
 */
export async function dispatchNext(deviceId: string, deps: CommandDeps, ctx: HandlerContext): Promise<QueueProgress> {
  const progress: QueueProgress = { sent: 0, resent: 0, expired: 0 };
  const pending = await deps.commands.pendingForDevice(deviceId, deps.settings.queueCap + 1);
  for (const command of pending) {
    if (command.status === 'SENT' && overdueStatus(command, deps.clock()))
      command.status = (await settleOverdue(command, deps, ctx)).status;
  }
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
    // Expired ones are never sent again; their deadline ends them (TIMED_OUT, settled here once it passed).
    if (command.expiresAt <= deps.clock() || command.attempts > deps.settings.maxResends) {
      if ((await settleOverdue(command, deps, ctx)).status === 'SENT') inFlight = true;
      continue;
    }
    inFlight = true;
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

/**
 * Settles an overdue command (lazy expiry, settle-overdue.ts) as a reader or a late ack finds it; when that ends
 * the one a device's backlog waited behind (TIMED_OUT), the next goes to the device if it is online.
 */
export async function settleCommand(
  command: CommandDocument,
  deps: CommandDeps,
  ctx: HandlerContext,
): Promise<CommandDocument> {
  const settled = await settleOverdue(command, deps, ctx);
  if (settled !== command && settled.status === 'TIMED_OUT' && settled.backlog) {
    if (await deps.presence.isOnline(settled.deviceId)) await dispatchNext(settled.deviceId, deps, ctx);
  }
  return settled;
}

/** Settles every overdue command of one device (before its list is read). */
export async function settleDevice(deviceId: string, deps: CommandDeps, ctx: HandlerContext): Promise<number> {
  const overdue = await deps.commands.overdue(deps.clock(), deps.settings.queueCap + 1, deviceId);
  for (const command of overdue) await settleCommand(command, deps, ctx);
  return overdue.length;
}
