import { createHash } from 'node:crypto';
import { keyIssue, leafIssue } from '../shared/json-values.js';

// Checks on what a device sends, before anything of it reaches a consumer or a store.

export type PayloadCheck<T> = { ok: true; value: T } | { ok: false; code: string; message: string };

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The payload as JSON. Invalid UTF-8 is refused rather than silently replaced by U+FFFD. */
export function parseJsonPayload(payload: Buffer): PayloadCheck<unknown> {
  const decoded = decodeJsonPayload(payload);
  return decoded.ok ? { ok: true, value: decoded.value.value } : decoded;
}

/**
 * The payload as JSON, and the text it was parsed from (a byte-order mark removed): valid JSON text that a
 * batch embeds as it is, rather than serialising the parsed value again.
 */
export function decodeJsonPayload(payload: Buffer): PayloadCheck<{ value: unknown; text: string }> {
  let text: string;
  try {
    text = utf8.decode(payload);
  } catch {
    return { ok: false, code: 'invalid_json', message: 'the payload is not valid UTF-8' };
  }
  try {
    return { ok: true, value: { value: JSON.parse(text), text } };
  } catch {
    return { ok: false, code: 'invalid_json', message: 'the payload is not valid JSON' };
  }
}

export const MAX_JSON_DEPTH = 32;

/**
 * The first thing, at any depth, that no consumer may receive: a key that starts with `$` (MongoDB reads
 * such keys as operators, so a device could inject an update operator into a document), a prototype key, or
 * a value that would not survive JSON unchanged (shared/json-values.ts: `1e999` would arrive as `null`).
 * Iterative, with a depth limit, so that a deeply nested payload cannot overflow the stack.
 */
export function findUnsafeJson(value: unknown, maxDepth = MAX_JSON_DEPTH): PayloadCheck<undefined> {
  // The path of an item is only spelled out for a refusal: each item names its parent and its key.
  interface Item {
    value: unknown;
    depth: number;
    parent: Item | undefined;
    key: string | number;
  }
  const pathOf = (item: Item | undefined, last?: string): string => {
    const parts: string[] = [];
    if (last !== undefined) parts.push(`.${last}`);
    for (let at = item; at?.parent !== undefined; at = at.parent)
      parts.push(typeof at.key === 'number' ? `[${at.key}]` : `.${at.key}`);
    const path = parts.reverse().join('');
    return path.startsWith('.') ? path.slice(1) : path;
  };
  const stack: Item[] = [{ value, depth: 0, parent: undefined, key: '' }];
  while (stack.length > 0) {
    const item = stack.pop()!;
    const current = item.value;
    if (typeof current !== 'object' || current === null) continue;
    if (item.depth >= maxDepth) {
      return { ok: false, code: 'too_deep', message: `the payload nests deeper than ${maxDepth} levels` };
    }
    if (Array.isArray(current)) {
      for (let index = 0; index < current.length; index += 1) {
        const child = current[index];
        if (typeof child === 'object' && child !== null)
          stack.push({ value: child, depth: item.depth + 1, parent: item, key: index });
        else {
          const issue = leafIssue(child);
          if (issue) return { ok: false, code: issue.code, message: `${pathOf(item)}[${index}]: ${issue.message}` };
        }
      }
      continue;
    }
    for (const key in current) {
      if (!Object.hasOwn(current, key)) continue;
      if (key.charCodeAt(0) === 36 /* $ */) {
        return {
          ok: false,
          code: 'forbidden_key',
          message: `the key "${pathOf(item, key)}" starts with "$", which is reserved`,
        };
      }
      const badKey = keyIssue(key);
      if (badKey) return { ok: false, code: badKey.code, message: `"${pathOf(item, key)}": ${badKey.message}` };
      const child = (current as Record<string, unknown>)[key];
      if (typeof child === 'object' && child !== null)
        stack.push({ value: child, depth: item.depth + 1, parent: item, key });
      else {
        const issue = leafIssue(child);
        if (issue) return { ok: false, code: issue.code, message: `"${pathOf(item, key)}": ${issue.message}` };
      }
    }
  }
  return { ok: true, value: undefined };
}

const MSG_ID = /^[\x21-\x7e]{1,128}$/;

function msgIdField(item: unknown): string | undefined {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) return undefined;
  const id = (item as { msgId?: unknown }).msgId;
  return typeof id === 'string' && MSG_ID.test(id) ? id : undefined;
}

/** Joins per-sample parts into one id; a long batch still gets a short one (the same parts, the same hash). */
function joinParts(parts: string[], max: number): string {
  const joined = parts.join(',');
  return joined.length <= max ? joined : `batch-${createHash('sha256').update(joined).digest('hex').slice(0, 32)}`;
}

/**
 * The device's own message id: `msgId` of an object, or of every element of a batch (ARCHITECTURE
 * telemetry payload), as the device wrote it (it names the message in a notice on the errors topic).
 * Undefined when absent or not a short printable string.
 */
export function msgIdOf(value: unknown): string | undefined {
  if (!Array.isArray(value)) return msgIdField(value);
  const ids = value.map(msgIdField);
  if (ids.length === 0 || !ids.every((id) => id !== undefined)) return undefined;
  return joinParts(ids as string[], 128);
}

/**
 * What names a message across its redeliveries: every sample's `msgId` scoped by its own `ts`. A device's
 * counter starts again after a reboot, so a msgId alone would take the first messages after the reboot for
 * redeliveries of old ones and drop new data; a redelivery is the same bytes, so it carries the same `ts`,
 * while the rebooted device stamps new times. Without a `ts` on every sample the msgId is not used at all:
 * the bridge's delivery identity (event-id.ts) names the message, which never confuses two messages, at the
 * price that a device's own resend of a message without `ts` is stored twice (docs: ARCHITECTURE "msgId").
 */
export function messageKeyOf(value: unknown): string | undefined {
  const items = Array.isArray(value) ? value : [value];
  const parts: string[] = [];
  for (const item of items) {
    const id = msgIdField(item);
    const ts = (item as { ts?: unknown } | null)?.ts;
    if (id === undefined || (typeof ts !== 'string' && typeof ts !== 'number')) return undefined;
    parts.push(`${id}@${ts}`);
  }
  return parts.length === 0 ? undefined : joinParts(parts, 192);
}

/** The status payload: `online` / `offline` as plain text (what devices send as birth and last will). */
export function parseStatus(payload: Buffer): PayloadCheck<'online' | 'offline'> {
  let text = payload.toString('utf8').trim();
  // Some devices send it as a JSON string or `{ "status": … }`; accept both spellings.
  if (text.startsWith('"') || text.startsWith('{')) {
    const parsed = parseJsonPayload(payload);
    if (parsed.ok && typeof parsed.value === 'string') text = parsed.value;
    else if (parsed.ok && typeof parsed.value === 'object' && parsed.value !== null) {
      const status = (parsed.value as { status?: unknown }).status;
      if (typeof status === 'string') text = status;
    }
  }
  const status = text.toLowerCase();
  if (status === 'online' || status === 'offline') return { ok: true, value: status };
  return { ok: false, code: 'invalid_status', message: 'a status payload is "online" or "offline"' };
}
