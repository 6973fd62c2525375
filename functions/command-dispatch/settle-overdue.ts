import type { HandlerContext } from '../../shared/function-app.js';
import type { CommandDocument } from './command-repository.js';
import type { CommandDeps } from './deps.js';
import type { CommandStatus } from './lifecycle.js';
import { recordTransition } from './record-transition.js';

/**
 * Lazy expiry. A command whose time ran out is over whenever anyone looks, not when a sweep last ran: QUEUED
 * past its TTL is EXPIRED, SENT or DELIVERED past its deadline is TIMED_OUT. Reads (`GET /commands/{id}`, the
 * device's list, a synchronous call that gave up), acks and every delivery attempt settle such a command first,
 * so the function needs no timer to be right and can stay at zero while nothing happens; the sweep only tidies
 * what nobody read (and announces it). Azure IoT Hub expires C2D messages the same way, at their next use.
 */
export function overdueStatus(command: CommandDocument, now: Date): CommandStatus | undefined {
  if (command.status === 'QUEUED') return command.expiresAt <= now ? 'EXPIRED' : undefined;
  if (command.status === 'SENT' || command.status === 'DELIVERED')
    return command.deadlineAt && command.deadlineAt <= now ? 'TIMED_OUT' : undefined;
  return undefined;
}

/**
 * Moves an overdue command to EXPIRED or TIMED_OUT (the same compare-and-set and lifecycle event as the sweep's)
 * and returns it as it now stands; any other command comes back as it is.
 */
export async function settleOverdue(
  command: CommandDocument,
  deps: CommandDeps,
  ctx: HandlerContext,
): Promise<CommandDocument> {
  const now = deps.clock();
  const to = overdueStatus(command, now);
  if (!to) return command;
  const moved = await recordTransition(deps, command._id, to, { at: now, set: { completedAt: now } }, ctx);
  // Lost the race to an ack, a cancel or another reader: what is stored now is the answer.
  return moved ?? (await deps.commands.find(command._id)) ?? command;
}
