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
