import { InvalidInputError, NotFoundError } from '../../shared/errors.js';
import type { HandlerContext } from '../../shared/function-app.js';
import { decodeCursor } from './command-repository.js';
import { type CommandView, toView } from './command-view.js';
import type { CommandDeps } from './deps.js';
import { settleCommand, settleDevice } from './device-queue.js';
import type { ListQuery } from './schema.js';

/** A command as it stands now: one past its TTL or deadline is settled first (lazy expiry). */
export async function getCommand(commandId: string, deps: CommandDeps, ctx: HandlerContext): Promise<CommandView> {
  const doc = await deps.commands.find(commandId);
  if (!doc) throw new NotFoundError(`command ${commandId} does not exist`, 'unknown_command');
  return toView(await settleCommand(doc, deps, ctx));
}

/** `GET /devices/{id}/commands`: newest first, keyset pagination (stable while commands are added). */
export async function listCommands(
  deviceId: string,
  query: ListQuery,
  deps: CommandDeps,
  ctx: HandlerContext,
): Promise<{ items: CommandView[]; nextCursor?: string }> {
  if (query.cursor && !decodeCursor(query.cursor))
    throw new InvalidInputError('the cursor is not one this API returned', undefined, 'invalid_cursor');
  // Settled before the status filter applies: a command past its TTL is listed as EXPIRED, never as QUEUED.
  await settleDevice(deviceId, deps, ctx);
  const page = await deps.commands.list(deviceId, query.status, query.limit, query.cursor);
  return { items: page.items.map(toView), ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}) };
}
