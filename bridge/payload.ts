import { createHash } from 'node:crypto';

// Checks on what a device sends, before anything of it reaches a consumer or a store.

export type PayloadCheck<T> = { ok: true; value: T } | { ok: false; code: string; message: string };

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The payload as JSON. Invalid UTF-8 is refused rather than silently replaced by U+FFFD. */
export function parseJsonPayload(payload: Buffer): PayloadCheck<unknown> {
  let text: string;
  try {
    text = utf8.decode(payload);
  } catch {
    return { ok: false, code: 'invalid_json', message: 'the payload is not valid UTF-8' };
  }
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false, code: 'invalid_json', message: 'the payload is not valid JSON' };
  }
}

export const MAX_JSON_DEPTH = 32;

/**
 * The first key, at any depth, that starts with `$`: MongoDB reads such keys as operators, so a device
 * could inject an update operator into a document. Iterative, with a depth limit, so that a deeply
 * nested payload cannot overflow the stack.
 */
export function findForbiddenKey(value: unknown, maxDepth = MAX_JSON_DEPTH): PayloadCheck<undefined> {
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
      const child = (current as Record<string, unknown>)[key];
      if (typeof child === 'object' && child !== null)
        stack.push({ value: child, depth: item.depth + 1, parent: item, key });
    }
  }
  return { ok: true, value: undefined };
}

const MSG_ID = /^[\x21-\x7e]{1,128}$/;

/**
 * The device's own message id: `msgId` of an object, or of every element of a batch (ARCHITECTURE
 * telemetry payload). Undefined when absent or not a short printable string.
 */
export function msgIdOf(value: unknown): string | undefined {
  const single = (item: unknown) => {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) return undefined;
    const id = (item as { msgId?: unknown }).msgId;
    return typeof id === 'string' && MSG_ID.test(id) ? id : undefined;
  };
  if (!Array.isArray(value)) return single(value);
  if (value.length === 0) return undefined;
  const ids = value.map(single);
  if (!ids.every((id) => id !== undefined)) return undefined;
  const joined = ids.join(',');
  // A long batch still gets a short id: the same msgIds always hash to the same value.
  return joined.length <= 128 ? joined : `batch-${createHash('sha256').update(joined).digest('hex').slice(0, 32)}`;
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
