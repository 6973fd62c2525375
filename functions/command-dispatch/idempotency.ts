import { createHash } from 'node:crypto';
import { DomainRefusalError } from '../../shared/errors.js';
import { requestDigest } from '../../shared/idempotency-key.js';
import type { CommandDocument } from './command-repository.js';
import { type CommandView, toView } from './command-view.js';
import type { CommandDeps } from './deps.js';
import { isTerminal } from './lifecycle.js';
import type { CreateCommandBody } from './schema.js';
import { settledOutcome, type WaitOutcome, waitForResult } from './wait-for-result.js';

// Idempotency-Key (draft-ietf-httpapi-idempotency-key-header): the key names the command. A retry of a
// create whose answer was lost finds the command the first attempt stored and answers with it (202, or the
// device's result for a synchronous call), marked `Idempotent-Replayed: true`; nothing is sent twice.

/** The command id a key stands for: the same key for the same device is the same command. */
export function idempotentCommandId(deviceId: string, key: string): string {
  // JSON keeps the pair unambiguous whatever characters either holds.
  return `ik-${createHash('sha256')
    .update(JSON.stringify([deviceId, key]))
    .digest('base64url')
    .slice(0, 32)}`;
}

/** What the request asked for (not how long it waits), so a key reused for another command is told apart. */
export function requestDigestOf(body: CreateCommandBody): string {
  const { wait: _wait, ...asked } = body;
  return requestDigest(asked);
}

export type ReplayOutcome = ({ kind: 'accepted'; command: CommandView } | WaitOutcome) & { replayed: true };

/**
 * Answers a retry with the command its key created. A different request under the same key is refused
 * (422); a synchronous retry waits for the same command's answer as the first caller does.
 */
export async function replayCommand(
  earlier: CommandDocument,
  digest: string,
  waitMs: number,
  deps: CommandDeps,
): Promise<ReplayOutcome> {
  if (earlier.requestDigest !== digest) {
    throw new DomainRefusalError(
      'idempotency_key_reused',
      'this Idempotency-Key was used for a different command on this device',
      { commandId: earlier._id },
    );
  }
  if (waitMs === 0) return { kind: 'accepted', command: toView(earlier), replayed: true };
  const subscription = await deps.bus.subscribe(earlier.deviceId, earlier._id);
  try {
    // Read again once subscribed: an answer that came before the subscription is only in the store.
    const current = (await deps.commands.find(earlier._id)) ?? earlier;
    if (isTerminal(current.status)) return { ...settledOutcome(toView(current)), replayed: true };
    return { ...(await waitForResult(earlier._id, subscription, waitMs, deps)), replayed: true };
  } finally {
    subscription.cancel();
  }
}
