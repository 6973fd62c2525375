import type { HandlerContext } from '../../shared/function-app.js';
import type { CommandDocument } from './command-repository.js';
import type { CommandDeps } from './deps.js';
import { dispatchNext } from './device-queue.js';
import { recordTransition } from './record-transition.js';

export interface SweepResult {
  expired: number;
  timedOut: number;
  flushed: number;
}

/**
 * Moves commands whose time ran out without any traffic: QUEUED past the TTL → EXPIRED, SENT or
 * DELIVERED past the deadline → TIMED_OUT. Then moves the queue on for online devices (the next
 * command after a timed-out one, or a send that failed while the sink was down). Every step is a compare-and-set, so sweeps running
 * on several instances at once (each timer, or the PingSource) do each move once.
 */
export async function sweepCommands(deps: CommandDeps, ctx: HandlerContext): Promise<SweepResult> {
  const now = deps.clock();
  const overdue = await deps.commands.overdue(now, deps.settings.sweepBatch);
  const moved = await inBatches(overdue, 16, (command) => expireOrTimeOut(command, now, deps, ctx));
  const result: SweepResult = {
    expired: moved.filter((to) => to === 'EXPIRED').length,
    timedOut: moved.filter((to) => to === 'TIMED_OUT').length,
    flushed: 0,
  };
  for (const deviceId of await deps.commands.devicesWithQueued(deps.settings.sweepBatch)) {
    if (!(await deps.presence.isOnline(deviceId))) continue;
    const progress = await dispatchNext(deviceId, deps, ctx);
    result.flushed += progress.sent;
  }
  if (result.expired + result.timedOut + result.flushed > 0) ctx.logger.info({ sweep: result }, 'sweep moved commands');
  return result;
}

async function expireOrTimeOut(command: CommandDocument, now: Date, deps: CommandDeps, ctx: HandlerContext) {
  const to = command.status === 'QUEUED' ? 'EXPIRED' : 'TIMED_OUT';
  const moved = await recordTransition(deps, command._id, to, { at: now, set: { completedAt: now } }, ctx);
  return moved ? to : undefined;
}

async function inBatches<T, R>(items: T[], size: number, run: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += size) out.push(...(await Promise.all(items.slice(i, i + size).map(run))));
  return out;
}
