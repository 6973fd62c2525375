import { ConflictError, DomainRefusalError, NotFoundError, RateLimitedError } from '../../shared/errors.js';
import type { HandlerContext } from '../../shared/function-app.js';
import type { CommandDocument } from './command-repository.js';
import { type CommandView, toView } from './command-view.js';
import { sendCommand } from './delivery.js';
import type { CommandDeps } from './deps.js';
import { idempotentCommandId, type ReplayOutcome, replayCommand, requestDigestOf } from './idempotency.js';
import { announce } from './record-transition.js';
import { type CreateCommandBody, MAX_WAIT_SECONDS } from './schema.js';
import { type WaitOutcome, waitForResult } from './wait-for-result.js';

export interface CreateCommandInput {
  deviceId: string;
  body: CreateCommandBody;
  /** The request's Idempotency-Key: it names the command, so a retry finds the first attempt's. */
  idempotencyKey?: string;
}

export type CreateCommandOutcome = { kind: 'accepted'; command: CommandView } | WaitOutcome | ReplayOutcome;

/**
 * `POST /devices/{id}/commands`: store the command QUEUED, send it at once when the device is
 * online, and either answer 202 or hold the caller until the device answers (a direct method).
 */
export async function createCommand(
  input: CreateCommandInput,
  deps: CommandDeps,
  ctx: HandlerContext,
): Promise<CreateCommandOutcome> {
  await requireActiveDevice(input.deviceId, deps);
  const command = newCommand(input, deps);
  const waitMs = waitMillis(input.body, command);
  const earlier = input.idempotencyKey ? await deps.commands.find(command._id) : null;
  if (earlier) return replayCommand(earlier, command.requestDigest!, waitMs, deps);
  const online = await deps.presence.isOnline(input.deviceId);
  if (!online) command.backlog = true;
  if (!(await deps.commands.insert(command))) {
    // A concurrent retry under the same key stored it first.
    const stored = await deps.commands.find(command._id);
    if (!stored)
      throw new ConflictError(`command ${command._id} is being created by another request`, 'idempotency_key_in_use');
    return replayCommand(stored, command.requestDigest!, waitMs, deps);
  }
  if (!online) await enforceQueueCap(command, deps);
  const subscription = await announceAndSubscribe(command, waitMs, deps);
  const current = online ? await sendSafely(command, deps, ctx) : command;
  if (!subscription) return { kind: 'accepted', command: toView(current) };
  return waitForResult(command._id, subscription, waitMs, deps);
}

export async function requireActiveDevice(deviceId: string, deps: Pick<CommandDeps, 'devices'>): Promise<void> {
  const device = await deps.devices.device(deviceId);
  // An app request: 404 tells the caller the device does not exist (no Knative retry involved).
  if (!device) throw new NotFoundError(`device ${deviceId} is not registered`, 'unknown_device');
  if (device.status !== 'active') throw new DomainRefusalError('device_disabled', `device ${deviceId} is disabled`);
}

function newCommand({ deviceId, body, idempotencyKey }: CreateCommandInput, deps: CommandDeps): CommandDocument {
  const now = deps.clock();
  const ttlSeconds = body.ttlSeconds ?? deps.settings.defaultTtlSeconds;
  const timeoutSeconds = body.timeoutSeconds ?? deps.settings.defaultTimeoutSeconds;
  return {
    _id: deps.newId(),
    deviceId,
    name: body.name,
    params: body.params ?? null,
    status: 'QUEUED',
    createdAt: now,
    updatedAt: now,
    expiresAt: new Date(now.getTime() + ttlSeconds * 1000),
    timeoutSeconds,
    // Provisional: an ack that overtakes the SENT write must still leave a deadline behind.
    deadlineAt: new Date(now.getTime() + timeoutSeconds * 1000),
    attempts: 0,
    history: [{ status: 'QUEUED', at: now }],
    ...(idempotencyKey
      ? { _id: idempotentCommandId(deviceId, idempotencyKey), requestDigest: requestDigestOf(body) }
      : {}),
  };
}

/**
 * The per-device cap, checked after the insert by position in the queue (createdAt, _id): two
 * concurrent requests for the last slot cannot both see room, as a count before the insert would.
 */
async function enforceQueueCap(command: CommandDocument, deps: CommandDeps): Promise<void> {
  const position = await deps.commands.queuePosition(command);
  if (position <= deps.settings.queueCap) return;
  await deps.commands.remove(command._id);
  throw new RateLimitedError(`device ${command.deviceId} already has ${deps.settings.queueCap} queued commands`, 30);
}

/**
 * Subscribe before sending: pub/sub keeps nothing for a subscriber that comes late. If the sink or
 * Redis is down the request fails (503) and the command is taken back, so the app's retry does not
 * leave a twin behind.
 */
async function announceAndSubscribe(command: CommandDocument, waitMs: number, deps: CommandDeps) {
  try {
    const [, subscription] = await Promise.all([
      announce(deps, command),
      waitMs > 0 ? deps.bus.subscribe(command.deviceId, command._id) : undefined,
    ]);
    return subscription;
  } catch (error) {
    await deps.commands.remove(command._id).catch(() => undefined);
    throw error;
  }
}

function waitMillis(body: CreateCommandBody, command: CommandDocument): number {
  if (body.wait === undefined || body.wait === false) return 0;
  const seconds = body.wait === true ? Math.min(command.timeoutSeconds, MAX_WAIT_SECONDS) : body.wait;
  return seconds * 1000;
}

/**
 * A sink outage leaves the command QUEUED, marked so that the sweep sends it (or the next connect does), instead
 * of failing the request.
 */
async function sendSafely(command: CommandDocument, deps: CommandDeps, ctx: HandlerContext): Promise<CommandDocument> {
  try {
    return (await sendCommand(command, deps, ctx)) ?? command;
  } catch (error) {
    ctx.logger.warn({ err: error, commandId: command._id }, 'send failed; the command stays queued');
    await deps.commands.markSendFailed(command._id, deps.clock()).catch(() => undefined);
    return command;
  }
}
