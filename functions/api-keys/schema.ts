import { z } from 'zod';
import { scopeSchema } from '../../shared/api-keys.js';

export const SERVICE = 'api-keys';

/** The scopes of this capability's routes (`keys:*` or `*` grant both). */
export const SCOPES = { read: 'keys:read', write: 'keys:write' } as const;

/** A managed key id: 16 lower-case hex digits (64 random bits), so it never contains the `_` separator. */
export const keyIdSchema = z.string().regex(/^[0-9a-f]{16}$/, 'a key id is 16 hex digits');

export const MAX_LIFETIME_DAYS = 3_650;

/** `POST /api-keys`: what the key is for, what it may do, and until when. */
export const createKeySchema = z
  .object({
    name: z.string().trim().min(1).max(100),
    scopes: z.array(scopeSchema).min(1).max(32),
    /** When the key stops working; absent: it never expires (revoke it instead). */
    expiresAt: z.iso
      .datetime({ offset: true })
      .optional()
      .describe(`in the future, at most ${MAX_LIFETIME_DAYS} days ahead`),
  })
  .strict();
export type CreateKey = z.infer<typeof createKeySchema>;
export const MAX_LIFETIME_MS = MAX_LIFETIME_DAYS * 86_400_000;

const statusSchema = z.enum(['active', 'expired', 'revoked']);

/** A key as the API shows it: never its hash. */
export const keyViewSchema = z.object({
  id: keyIdSchema,
  name: z.string(),
  scopes: z.array(z.string()),
  status: statusSchema,
  createdAt: z.iso.datetime(),
  createdBy: z.string(),
  expiresAt: z.iso.datetime().nullable(),
  revokedAt: z.iso.datetime().nullable(),
  revokedBy: z.string().nullable(),
  /** The last use, to the minute; null when never used. */
  lastUsedAt: z.iso.datetime().nullable(),
});
export type KeyView = z.infer<typeof keyViewSchema>;

/** The answer to a creation: the view plus the key itself, shown this once. */
export const createdKeySchema = keyViewSchema.extend({
  key: z.string().describe('`kiot_<id>_<secret>`: shown once, store it now'),
});

/** `GET /api-keys?status=…&limit=…&cursor=…`: newest first. */
export const listQuerySchema = z
  .object({
    status: statusSchema.optional(),
    limit: z.coerce.number().int().min(1).max(200).default(50),
    cursor: z
      .string()
      .regex(/^\d{1,15}\.[0-9a-f]{16}$/, 'a cursor from a previous page')
      .optional(),
  })
  .strict();
export type ListQuery = z.infer<typeof listQuerySchema>;

export const keyPageSchema = z.object({
  items: z.array(keyViewSchema),
  /** Pass as `cursor` for the next page; null on the last one. */
  nextCursor: z.string().nullable(),
});

/** `GET /api-keys/self`: the key that asks, as much as it may know of itself (never a secret or hash). */
export const selfViewSchema = z.object({
  id: z.string(),
  scopes: z.array(z.string()),
  source: z.enum(['bootstrap', 'managed']).describe('bootstrap: from the Secret (API_KEYS); managed: made here'),
  name: z.string().nullable(),
  expiresAt: z.iso.datetime().nullable(),
});
export type SelfView = z.infer<typeof selfViewSchema>;
