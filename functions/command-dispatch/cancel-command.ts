import { ConflictError, NotFoundError } from '../../shared/errors.js';
import type { HandlerContext } from '../../shared/function-app.js';
import { type CommandView, toView } from './command-view.js';
import type { CommandDeps } from './deps.js';
import { recordTransition } from './record-transition.js';

/** `DELETE /commands/{id}`: only a command still QUEUED can be cancelled; once sent, the device has it. */
export async function cancelCommand(commandId: string, deps: CommandDeps, ctx: HandlerContext): Promise<CommandView> {
  const at = deps.clock();
  const cancelled = await recordTransition(deps, commandId, 'CANCELLED', { at, set: { completedAt: at } }, ctx);
  if (cancelled) return toView(cancelled);
  const current = await deps.commands.find(commandId);
  if (!current) throw new NotFoundError(`command ${commandId} does not exist`, 'unknown_command');
  if (current.status === 'CANCELLED') return toView(current);
  throw new ConflictError(
    `command ${commandId} is ${current.status} and can no longer be cancelled`,
    'command_not_cancellable',
    {
      status: current.status,
    },
  );
}
