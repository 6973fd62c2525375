import type { HandlerContext } from '../../shared/function-app.js';
import type { CommandDocument, TransitionChange } from './command-repository.js';
import { toView } from './command-view.js';
import type { CommandDeps } from './deps.js';
import { type CommandStatus, isTerminal, lifecycleEventType } from './lifecycle.js';

/** The stable id of a lifecycle event, so a re-emission after a retry is dropped by consumers. */
export function lifecycleEventId(doc: CommandDocument): string {
  return doc.status === 'SENT' ? `${doc._id}.sent.${doc.attempts}` : `${doc._id}.${doc.status.toLowerCase()}`;
}

/**
 * Stores one lifecycle step and tells the world: `io.kiot.command.<state>` to K_SINK and, when the
 * command is finished, a wake-up for any caller waiting on it. Returns the updated command, or null
 * when the step did not apply (a late or duplicate cause).
 *
 * At least once: when a retried event finds its step already stored (the store write landed, the emit
 * failed), the event and the wake-up go out again under the same event id.
 */
export async function recordTransition(
  deps: CommandDeps,
  commandId: string,
  to: CommandStatus,
  change: TransitionChange,
  ctx: HandlerContext,
  options: { reannounce?: boolean } = {},
): Promise<CommandDocument | null> {
  const updated = await deps.commands.transition(commandId, to, change);
  if (updated) {
    await announce(deps, updated);
    return updated;
  }
  if (options.reannounce) {
    const current = await deps.commands.find(commandId);
    if (current?.status === to) await announce(deps, current);
  }
  ctx.logger.debug({ commandId, to }, 'transition did not apply');
  return null;
}

export async function announce(deps: CommandDeps, doc: CommandDocument): Promise<void> {
  const view = toView(doc);
  await Promise.all([
    deps.emitter.emit({
      type: lifecycleEventType(doc.status),
      id: lifecycleEventId(doc),
      subject: doc.deviceId,
      data: view,
    }),
    isTerminal(doc.status) ? deps.bus.publish(view) : undefined,
  ]);
}
