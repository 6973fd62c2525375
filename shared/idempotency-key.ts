import { createHash } from 'node:crypto';
import { z } from 'zod';

/**
 * The `Idempotency-Key` request header (draft-ietf-httpapi-idempotency-key-header): a structured-field
 * string, sent quoted or bare, of 1-255 visible ASCII characters. One schema for every route that takes
 * one, so a client can use the same keys everywhere.
 */
export const idempotencyKeySchema = z
  .string()
  .transform((value) =>
    value.length >= 2 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value,
  )
  .pipe(z.string().regex(/^[\x21-\x7e]{1,255}$/, 'use 1-255 visible ASCII characters'));

/** What `idempotencyKeySchema` accepts, as one pattern (for API documents): bare, or quoted unless empty. */
export const idempotencyKeyHeaderSchema = z
  .string()
  .regex(/^(?!""$)(?:[\x21-\x7e]{1,255}|"[\x21-\x7e]{254,255}")$/, 'use 1-255 visible ASCII characters');

/** JSON with keys sorted and `undefined` left out: the same request always serialises the same way. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** What a request asked for, so a key reused for another request is told apart from a retry. */
export function requestDigest(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('base64url');
}
