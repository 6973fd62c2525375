/**
 * What a device or an app may put into JSON that kiot stores: values that survive the trip through JSON
 * text, UTF-8 bytes and BSON unchanged, under keys that cannot reach an object's prototype.
 *
 * - `1e999` parses to `Infinity`, which `JSON.stringify` writes as `null`: in a merge patch (RFC 7386) that
 *   null would delete the field instead of setting it.
 * - A lone UTF-16 surrogate (`"\ud800"`) is valid JSON text but not Unicode: UTF-8 encoding (MQTT, HTTP) and
 *   BSON replace it with U+FFFD, so the device would read back something else than it sent.
 * - U+0000 in a key: BSON writes a field name as a C string (bsonspec.org: `e_name ::= cstring`), so the
 *   driver refuses the whole write ("key must not contain null bytes") — a 500 for what is valid JSON.
 * - `__proto__` as a key is an own property after `JSON.parse`, but `target[key] = value` in a merge sets the
 *   object's prototype instead; `constructor` and `prototype` are refused with it (what a state document
 *   never needs, and what every prototype-pollution gadget looks for).
 */
export const PROTOTYPE_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

export interface JsonValueIssue {
  code: 'prototype_key' | 'non_finite_number' | 'invalid_unicode' | 'null_character';
  message: string;
}

// lib ES2023 does not declare it; Node 20 (V8 11.3) has String.prototype.isWellFormed natively.
const isWellFormed = (text: string) => (text as unknown as { isWellFormed(): boolean }).isWellFormed();

/** Why an object key cannot be stored as it is; `undefined` when it can. */
export function keyIssue(key: string): JsonValueIssue | undefined {
  if (PROTOTYPE_KEYS.has(key)) {
    return { code: 'prototype_key', message: `"${key}" is reserved (it names the prototype of an object)` };
  }
  if (!isWellFormed(key)) return { code: 'invalid_unicode', message: 'the key holds a lone UTF-16 surrogate' };
  if (key.includes('\u0000'))
    return { code: 'null_character', message: 'the key holds U+0000 (BSON field names cannot)' };
  return undefined;
}

/** Why a leaf value would not come back unchanged through JSON; `undefined` when it would. */
export function leafIssue(value: unknown): JsonValueIssue | undefined {
  if (typeof value === 'number' && !Number.isFinite(value)) {
    return { code: 'non_finite_number', message: 'the number is too large for JSON (it would be stored as null)' };
  }
  if (typeof value === 'string' && !isWellFormed(value)) {
    return { code: 'invalid_unicode', message: 'the string holds a lone UTF-16 surrogate' };
  }
  return undefined;
}
