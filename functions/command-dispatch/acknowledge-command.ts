import { DomainRefusalError, InvalidInputError } from '../../shared/errors.js';
import type { CloudEvent } from '../../shared/cloudevents.js';
import type { HandlerContext } from '../../shared/function-app.js';
import type { TransitionChange } from './command-repository.js';
import type { CommandDeps } from './deps.js';
import { dispatchNext } from './device-queue.js';
import { ACK_TO_STATUS } from './lifecycle.js';
import { recordTransition } from './record-transition.js';
import { ackOf, type AckEventData } from './schema.js';

/**
 * `io.kiot.command.acknowledged`: the device accepted (DELIVERED) or answered (SUCCEEDED, FAILED,
 * REJECTED). The transition filters on the allowed previous states, so a duplicate ack, an ack after
 * the command timed out, or an "accepted" after "succeeded" matches nothing and changes nothing (204).
 */
export async function acknowledgeCommand(event: CloudEvent<unknown>, data: AckEventData, deps: CommandDeps, ctx: HandlerContext): Promise<void> {
  const { commandId, deviceId } = ackOf(data, event.subject);
  if (!commandId) throw new InvalidInputError('the ack names no command (data.commandId or data.topic)', undefined, 'invalid_ack');
  const command = await deps.commands.find(commandId);
  // Never retried (422 → dead-letter sink): the command was never created here, or was removed.
  if (!command) throw new DomainRefusalError('unknown_command', `command ${commandId} does not exist`);
  // The broker ACL keeps a device under its own topics; this keeps it to its own commands as well.
  if (deviceId && deviceId !== command.deviceId) {
    throw new DomainRefusalError('command_device_mismatch', `command ${commandId} does not belong to device ${deviceId}`);
  }
  const to = ACK_TO_STATUS[data.status];
  const at = deps.clock();
  const change: TransitionChange = { at, cause: event.id };
  if (to === 'DELIVERED') {
    // "No result follows delivery in time": the clock restarts when the device accepts.
    change.set = { deliveredAt: at, deadlineAt: new Date(at.getTime() + command.timeoutSeconds * 1000) };
  } else {
    change.set = { completedAt: at };
    if (data.result !== undefined) change.set.result = data.result;
    if (data.error !== undefined) change.set.error = data.error;
  }
  const updated = await recordTransition(deps, commandId, to, change, ctx, { reannounce: true });
  if (!updated) {
    ctx.logger.info({ commandId, ack: data.status, status: command.status }, 'late or duplicate ack ignored');
    return;
  }
  // The device took this one: the next in its queue may go (after the waiting caller was woken).
  if (command.status === 'SENT' || command.status === 'QUEUED') await dispatchNext(command.deviceId, deps, ctx);
}
