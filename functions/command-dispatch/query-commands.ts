import { InvalidInputError, NotFoundError } from '../../shared/errors.js';
import type { HandlerContext } from '../../shared/function-app.js';
import { decodeCursor } from './command-repository.js';
import { type CommandView, toView } from './command-view.js';
import type { CommandDeps } from './deps.js';
import { settleCommand, settleDevice } from './device-queue.js';
import { OPEN_STATUSES } from './lifecycle.js';
import type { ListQuery } from './schema.js';

/** A command as it stands now: one past its TTL or deadline is settled first (lazy expiry). */
export async function getCommand(commandId: string, deps: CommandDeps, ctx: HandlerContext): Promise<CommandView> {
  const doc = await deps.commands.find(commandId);
  if (!doc) throw new NotFoundError(`command ${commandId} does not exist`, 'unknown_command');
  return toView(await settleCommand(doc, deps, ctx));
}

/**
 * `GET /devices/{id}/commands` (or `GET /commands` for the fleet, `deviceId` undefined): newest first, keyset
 * pagination (stable while commands are added).
 */
export async function listCommands(
  deviceId: string | undefined,
  query: ListQuery,
  deps: CommandDeps,
  ctx: HandlerContext,
): Promise<{ items: CommandView[]; nextCursor?: string }> {
  if (query.cursor && !decodeCursor(query.cursor))
    throw new InvalidInputError('the cursor is not one this API returned', undefined, 'invalid_cursor');
  // Settled before the status filter applies: a command past its TTL is listed as EXPIRED, never as QUEUED.
  if (deviceId === undefined) await settleFleet(deps, ctx);
  else await settleDevice(deviceId, deps, ctx);
  const page = await deps.commands.list(deviceId, query.status, query.limit, query.cursor);
  return { items: page.items.map(toView), ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}) };
}

/**
 * `GET /command-summary`: the fleet's commands still waiting for their device (QUEUED, SENT, DELIVERED), by
 * status, and their total: the commands in flight.
 */
export async function commandSummary(deps: CommandDeps) {
  const counts = await deps.commands.countByStatus(OPEN_STATUSES, deps.clock());
  const byStatus = Object.fromEntries(OPEN_STATUSES.map((status) => [status, counts[status] ?? 0]));
  return { inFlight: Object.values(byStatus).reduce((sum, n) => sum + n, 0), byStatus };
}

/** The fleet listing settles what is overdue first, a bounded number per request (the sweep does the rest). */
async function settleFleet(deps: CommandDeps, ctx: HandlerContext): Promise<void> {
  const overdue = await deps.commands.overdue(deps.clock(), FLEET_SETTLE_LIMIT);
  for (const command of overdue) await settleCommand(command, deps, ctx);
}
const FLEET_SETTLE_LIMIT = 200;
