import type { HandlerContext } from '../../shared/function-app.js';
import type { PendingWork } from '../../shared/pending-work.js';
import { COMMANDS_COLLECTION, type CommandDocument } from './command-repository.js';
import type { CommandDeps } from './deps.js';
import { dispatchNext } from './device-queue.js';
import { recordTransition } from './record-transition.js';

export interface SweepResult {
  expired: number;
  timedOut: number;
  flushed: number;
}

/**
 * What the sweep has to do, as the tick gate checks it before a tick may wake command-dispatch
 * (knative/command-dispatch/ping-source.yaml carries it; a test compares the two): a command past its TTL or
 * deadline that no reader settled yet, or a send that failed while the sink was down.
 */
export const SWEEP_PENDING_WORK: PendingWork = [
  { collection: COMMANDS_COLLECTION, match: { status: 'QUEUED' }, due: { field: 'expiresAt' } },
  { collection: COMMANDS_COLLECTION, match: { status: { $in: ['SENT', 'DELIVERED'] } }, due: { field: 'deadlineAt' } },
  { collection: COMMANDS_COLLECTION, match: { status: 'QUEUED' }, due: { field: 'sendFailedAt' } },
];

/**
 * Tidies what no reader settled (expiry is lazy: settle-overdue.ts): QUEUED past the TTL → EXPIRED, SENT or
 * DELIVERED past the deadline → TIMED_OUT, each announced. Then moves the queue on for the devices that need it
 * and are online: the next command after a timed-out one, or a send that failed while the sink was down (an
 * offline device's next connect sends its queue). Every step is a compare-and-set, so sweeps running on several
 * instances at once (each timer, or the tick) do each move once.
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
  const devices = new Set([
    ...overdue.filter((_command, i) => moved[i] === 'TIMED_OUT').map((command) => command.deviceId),
    ...(await deps.commands.devicesWithFailedSends(deps.settings.sweepBatch)),
  ]);
  for (const deviceId of devices) {
    if (await deps.presence.isOnline(deviceId)) result.flushed += (await dispatchNext(deviceId, deps, ctx)).sent;
    await deps.commands.clearFailedSends(deviceId);
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
