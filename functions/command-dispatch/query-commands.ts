import { InvalidInputError, NotFoundError } from '../../shared/errors.js';
import { decodeCursor } from './command-repository.js';
import { type CommandView, toView } from './command-view.js';
import type { CommandDeps } from './deps.js';
import type { ListQuery } from './schema.js';

export async function getCommand(commandId: string, deps: CommandDeps): Promise<CommandView> {
  const doc = await deps.commands.find(commandId);
  if (!doc) throw new NotFoundError(`command ${commandId} does not exist`, 'unknown_command');
  return toView(doc);
}

/** `GET /devices/{id}/commands`: newest first, keyset pagination (stable while commands are added). */
export async function listCommands(
  deviceId: string,
  query: ListQuery,
  deps: CommandDeps,
): Promise<{ items: CommandView[]; nextCursor?: string }> {
  if (query.cursor && !decodeCursor(query.cursor))
    throw new InvalidInputError('the cursor is not one this API returned', undefined, 'invalid_cursor');
  const page = await deps.commands.list(deviceId, query.status, query.limit, query.cursor);
  return { items: page.items.map(toView), ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}) };
}
