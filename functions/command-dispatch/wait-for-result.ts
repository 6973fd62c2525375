import { type CommandView, toView } from './command-view.js';
import type { Subscription } from './completion-bus.js';
import type { CommandDeps } from './deps.js';
import type { CommandStatus } from './lifecycle.js';

/** Ends a synchronous call with the device's answer (200) or with the command still tracked (504). */
export type WaitOutcome = { kind: 'answered'; command: CommandView } | { kind: 'timeout'; command: CommandView };

/** Final statuses that carry an answer; EXPIRED and TIMED_OUT are the gateway timing out. */
const ANSWERED: readonly CommandStatus[] = ['SUCCEEDED', 'FAILED', 'REJECTED', 'CANCELLED'];

export async function waitForResult(
  commandId: string,
  subscription: Subscription,
  waitMs: number,
  deps: CommandDeps,
): Promise<WaitOutcome> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), waitMs);
  });
  const woken = await Promise.race([subscription.done, timedOut]);
  clearTimeout(timer);
  subscription.cancel();
  // Re-read once: a wake-up lost with a Redis reconnect must not turn an answer into a 504.
  return settledOutcome(woken ?? (await latest(commandId, deps)));
}

/** How a wait ends for a command as it stands: its answer, or still open (the gateway timed out). */
export function settledOutcome(command: CommandView): WaitOutcome {
  return ANSWERED.includes(command.status) ? { kind: 'answered', command } : { kind: 'timeout', command };
}

async function latest(commandId: string, deps: CommandDeps): Promise<CommandView> {
  const doc = await deps.commands.find(commandId);
  if (!doc) throw new Error(`command ${commandId} vanished while a caller waited`);
  return toView(doc);
}
