import type { CloudEvent } from '../../shared/cloudevents.js';
import { DomainRefusalError, InvalidInputError } from '../../shared/errors.js';
import type { HandlerContext } from '../../shared/function-app.js';
import type { CommandDocument, TransitionChange } from './command-repository.js';
import type { CommandDeps } from './deps.js';
import { dispatchNext, settleCommand } from './device-queue.js';
import { ACK_TO_STATUS, type CommandStatus } from './lifecycle.js';
import { recordTransition } from './record-transition.js';
import { type AckEventData, ackOf } from './schema.js';

/**
 * `io.kiot.command.acknowledged`: the device accepted (DELIVERED) or answered (SUCCEEDED, FAILED,
 * REJECTED). The transition filters on the allowed previous states, on the device and on the deadline, so a
 * duplicate ack, an ack after the command timed out (or after its deadline passed, which settles it as
 * TIMED_OUT: lazy expiry), or an "accepted" after "succeeded" changes nothing (204). An answer is one write
 * on the hot path; only when it matches nothing is the
 * command read, to tell a late ack (ignored) from an unknown command or a foreign device (422).
 */
export async function acknowledgeCommand(
  event: CloudEvent<unknown>,
  data: AckEventData,
  deps: CommandDeps,
  ctx: HandlerContext,
): Promise<void> {
  const { commandId, deviceId } = ackOf(data, event.subject);
  if (!commandId)
    throw new InvalidInputError('the ack names no command (data.commandId or data.topic)', undefined, 'invalid_ack');
  const to = ACK_TO_STATUS[data.status];
  const change = await changeFor(to, data, commandId, deps);
  if (!change) return refuseOrIgnore(commandId, deviceId, data, deps, ctx);
  // The broker ACL keeps a device under its own topics; the filter keeps it to its own commands as well.
  // An answer counts only before the deadline (none yet while QUEUED: the ack overtook the SENT write).
  change.where = {
    ...(deviceId ? { deviceId } : {}),
    $or: [{ deadlineAt: { $exists: false } }, { deadlineAt: { $gt: change.at } }],
  };
  change.cause = event.id;
  const updated = await recordTransition(deps, commandId, to, change, ctx, { reannounce: true });
  if (!updated) return refuseOrIgnore(commandId, deviceId, data, deps, ctx);
  // The device took a command from its backlog: the next one may go (after the waiting caller was woken).
  if (updated.backlog && freedTheSlot(updated)) await dispatchNext(updated.deviceId, deps, ctx);
}

/** The first ack of a command frees its device's slot; a result after "accepted" does not free it again. */
function freedTheSlot(command: CommandDocument): boolean {
  return command.history.filter((entry) => entry.status !== 'QUEUED' && entry.status !== 'SENT').length === 1;
}

/** What the transition writes; undefined when the command does not exist (DELIVERED reads it first). */
async function changeFor(
  to: CommandStatus,
  data: AckEventData,
  commandId: string,
  deps: CommandDeps,
): Promise<TransitionChange | undefined> {
  const at = deps.clock();
  if (to === 'DELIVERED') {
    // "No result follows delivery in time": the deadline restarts when the device accepts.
    const command = await deps.commands.find(commandId);
    if (!command) return undefined;
    return { at, set: { deliveredAt: at, deadlineAt: new Date(at.getTime() + command.timeoutSeconds * 1000) } };
  }
  const change: TransitionChange = { at, set: { completedAt: at } };
  if (data.result !== undefined) change.set!.result = data.result;
  if (data.error !== undefined) change.set!.error = data.error;
  return change;
}

async function refuseOrIgnore(
  commandId: string,
  deviceId: string | undefined,
  data: AckEventData,
  deps: CommandDeps,
  ctx: HandlerContext,
): Promise<void> {
  const command: CommandDocument | null = await deps.commands.find(commandId);
  // Never retried (422 → dead-letter sink): the command was never created here, or was removed.
  if (!command) throw new DomainRefusalError('unknown_command', `command ${commandId} does not exist`);
  if (deviceId && deviceId !== command.deviceId) {
    throw new DomainRefusalError(
      'command_device_mismatch',
      `command ${commandId} does not belong to device ${deviceId}`,
    );
  }
  const current = await settleCommand(command, deps, ctx);
  ctx.logger.info({ commandId, ack: data.status, status: current.status }, 'late or duplicate ack ignored');
}
