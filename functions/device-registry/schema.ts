import { z } from 'zod';
import { apiKeyFields } from '../../shared/api-keys.js';
import { baseConfigSchema, mongoFields, mqttFields, redisFields, sinkFields } from '../../shared/config.js';
import { deviceIdSchema, deviceStatusSchema, telemetrySchemaSchema } from '../../shared/devices.js';
import { eventAuthFields } from '../../shared/event-auth.js';

export const SERVICE = 'device-registry';

export const configSchema = baseConfigSchema.extend({
  ...mongoFields,
  ...redisFields,
  ...mqttFields,
  ...sinkFields,
  ...apiKeyFields,
  ...eventAuthFields,
  /**
   * How the broker learns about devices: `dynsec` writes Mosquitto dynamic-security clients and roles (MQTT_URL
   * with MQTT_USERNAME/MQTT_PASSWORD of a client allowed $CONTROL/dynamic-security/#); `hooks` writes nothing
   * and relies on the broker calling POST /broker/authn and /broker/authz (EMQX).
   */
  BROKER_ACCESS: z.enum(['dynsec', 'hooks']).default('dynsec'),
  /** How long the broker auth hooks may answer from Redis. */
  AUTH_CACHE_TTL_SECONDS: z.coerce.number().int().min(1).max(3_600).default(30),
  /** Prefix of every Redis key the registry writes. */
  REDIS_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9:._-]{0,64}$/)
    .default('kiot:registry:'),
  /**
   * 32 random bytes, base64url: encrypts stored provisioning replies (AES-256-GCM) so that a redelivered
   * request is answered with the same device and secret without the plaintext secret ever being stored.
   */
  PROVISIONING_REPLY_KEY: z
    .string()
    .refine(
      (value) => Buffer.from(value, 'base64url').length === 32,
      'must be 32 bytes, base64url (openssl rand -base64 32 | tr "+/" "-_" | tr -d =)',
    )
    .describe('32 random bytes, base64url (openssl rand -base64 32 | tr "+/" "-_" | tr -d =)'),
  /** How long a provisioning request id is remembered (and its reply replayed). */
  PROVISIONING_REPLAY_SECONDS: z.coerce.number().int().min(60).default(86_400),
  /** Outbox (outbox.ts): a pending io.kiot.device.* event older than this is the flush's to emit. */
  OUTBOX_STALE_MS: z.coerce.number().int().min(0).max(3_600_000).default(5_000),
  /** Outbox flush period while the process runs (0: none); requests start one at most this often too. */
  OUTBOX_FLUSH_INTERVAL_MS: z.coerce.number().int().min(0).max(3_600_000).default(5_000),
  /** Devices one flush handles at most. */
  OUTBOX_FLUSH_LIMIT: z.coerce.number().int().min(1).max(10_000).default(100),
});
export type RegistryConfig = z.infer<typeof configSchema>;

/** MongoDB field names: no leading `$` and no `.` (they would be operators or paths). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: MongoDB field names may not contain U+0000
const safeKey = /^(?!\$)[^.\u0000]{1,64}$/;

function checkKeys(value: unknown, path: (string | number)[], ctx: z.RefinementCtx, depth: number): void {
  if (depth > 6) {
    ctx.addIssue({ code: 'custom', path, message: 'metadata nests deeper than 6 levels' });
    return;
  }
  if (Array.isArray(value)) for (const [i, item] of value.entries()) checkKeys(item, [...path, i], ctx, depth + 1);
  else if (value !== null && typeof value === 'object') {
    for (const [key, inner] of Object.entries(value)) {
      if (!safeKey.test(key))
        ctx.addIssue({ code: 'custom', path: [...path, key], message: 'keys may not start with $ or contain .' });
      checkKeys(inner, [...path, key], ctx, depth + 1);
    }
  }
}

export const METADATA_MAX_BYTES = 8_192;
export const metadataSchema = z.record(z.string(), z.json()).superRefine((value, ctx) => {
  checkKeys(value, [], ctx, 0);
  if (Buffer.byteLength(JSON.stringify(value)) > METADATA_MAX_BYTES) {
    ctx.addIssue({ code: 'custom', message: `metadata exceeds ${METADATA_MAX_BYTES} bytes` });
  }
});

export const typeNameSchema = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'use 1-64 of A-Z a-z 0-9 . _ -');
export const tagSchema = z.string().regex(/^[A-Za-z0-9._:=-]{1,64}$/, 'use 1-64 of A-Z a-z 0-9 . _ : = -');
export const tagsSchema = z
  .array(tagSchema)
  .max(32)
  .refine((tags) => new Set(tags).size === tags.length, 'tags must be unique');
const nameSchema = z.string().min(1).max(128);

export const registerDeviceSchema = z
  .object({
    id: deviceIdSchema.optional(),
    name: nameSchema.optional(),
    type: typeNameSchema.optional(),
    tags: tagsSchema.default([]),
    metadata: metadataSchema.default({}),
    status: deviceStatusSchema.default('active'),
  })
  .strict();
export type RegisterDeviceInput = z.infer<typeof registerDeviceSchema>;

export const BULK_MAX = 1_000;
export const bulkRegisterSchema = z.object({ devices: z.array(z.unknown()).min(1).max(BULK_MAX) }).strict();

export const updateDeviceSchema = z
  .object({
    name: nameSchema.optional(),
    tags: tagsSchema.optional(),
    metadata: metadataSchema.optional(),
    status: deviceStatusSchema.optional(),
  })
  .strict()
  .refine((patch) => Object.keys(patch).length > 0, 'name, tags, metadata or status');
export type UpdateDeviceInput = z.infer<typeof updateDeviceSchema>;

export const listQuerySchema = z
  .object({
    type: typeNameSchema.optional(),
    tag: tagSchema.optional(),
    status: deviceStatusSchema.optional(),
    /** Devices whose id starts with this (a search box): an index range on `_id`, never a scan. */
    idPrefix: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,64}$/, 'use 1-64 of A-Z a-z 0-9 . _ -')
      .optional(),
    /** These devices only: comma-separated ids, at most 100 (a page of devices another API named). */
    ids: z
      .string()
      .transform((text) => text.split(','))
      .pipe(z.array(deviceIdSchema).min(1).max(100))
      .optional(),
    limit: z.coerce.number().int().min(1).max(500).default(100),
    cursor: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,200}$/)
      .optional(),
  })
  .strict();
export type ListQuery = z.infer<typeof listQuerySchema>;

export const createTokenSchema = z
  .object({
    ttlSeconds: z.number().int().min(60).max(31_536_000).default(86_400),
    maxUses: z.number().int().min(1).max(1_000_000).default(1),
    type: typeNameSchema.optional(),
    tags: tagsSchema.default([]),
  })
  .strict();
export type CreateTokenInput = z.infer<typeof createTokenSchema>;

export const deviceTypeSchema = z.object({ telemetrySchema: telemetrySchemaSchema }).strict();

/** A provisioning request's reply key (reply-crypto.ts): 32 random bytes, base64url without padding. */
export const replyKeySchema = z
  .string({
    error: 'replyKey is required: 32 fresh random bytes, base64url; the credential in the response is encrypted to it',
  })
  .regex(/^[A-Za-z0-9_-]{43}$/, {
    message: 'replyKey must be 32 random bytes, base64url without padding (43 characters)',
    abort: true,
  })
  .refine((value) => Buffer.from(value, 'base64url').length === 32, 'replyKey must decode to 32 bytes');

/** `io.kiot.provisioning.requested` data: the device's JSON request as the bridge forwards it. */
export const provisioningRequestSchema = z.object({
  claimToken: z.string().min(1).max(256),
  replyKey: replyKeySchema,
  id: deviceIdSchema.optional(),
  name: nameSchema.optional(),
  metadata: metadataSchema.optional(),
});
export type ProvisioningRequest = z.infer<typeof provisioningRequestSchema>;
export const requestIdSchema = z.string().regex(/^[A-Za-z0-9._-]{1,128}$/);

// EMQX HTTP authentication/authorization (docs.emqx.com, "HTTP Service"): the request body is a template
// the operator configures; these are the placeholders kiot's template sends. Extra fields are ignored.
export const authnHookSchema = z.looseObject({
  clientid: z.string(),
  username: z.string().default(''),
  password: z.string().default(''),
  /** Answer an `allow` with the device's ACL (`acl`), for a broker that re-checks it (kiot-auth). */
  with_acl: z.boolean().optional(),
});
export const authzHookSchema = z.looseObject({
  clientid: z.string(),
  username: z.string().default(''),
  topic: z.string().min(1),
  action: z.enum(['publish', 'subscribe', 'all']),
});

// Response shapes: the OpenAPI document is generated from these.
export const deviceViewSchema = z.object({
  id: deviceIdSchema,
  name: z.string().optional(),
  type: z.string().optional(),
  tags: z.array(z.string()),
  metadata: z.record(z.string(), z.unknown()),
  status: deviceStatusSchema,
  version: z.number().int(),
  createdAt: z.string(),
  updatedAt: z.string(),
  credentialRotatedAt: z.string(),
});
export type DeviceView = z.infer<typeof deviceViewSchema>;
export const registeredSchema = z.object({ device: deviceViewSchema, secret: z.string().describe('shown once') });
export const bulkResultSchema = z.object({
  created: z.number().int(),
  results: z.array(
    z.object({
      index: z.number().int(),
      status: z.enum(['created', 'conflict', 'invalid']),
      id: z.string().optional(),
      secret: z.string().optional(),
      error: z.unknown().optional(),
    }),
  ),
});
/** `GET /devices/summary`: the registry's counts, for a fleet overview. */
export const deviceSummarySchema = z.object({
  total: z.number().int(),
  byStatus: z.object({ active: z.number().int(), disabled: z.number().int() }),
  /** Devices per type, most first; devices without a type are counted under `null`. */
  byType: z.array(z.object({ type: z.string().nullable(), devices: z.number().int() })),
});
export type DeviceSummary = z.infer<typeof deviceSummarySchema>;
export const devicePageSchema = z.object({ items: z.array(deviceViewSchema), nextCursor: z.string().optional() });
export const tokenCreatedSchema = z.object({
  id: z.string(),
  token: z.string().describe('shown once'),
  expiresAt: z.string(),
  maxUses: z.number().int(),
});
export const deviceTypeViewSchema = z.object({
  type: z.string(),
  telemetrySchema: telemetrySchemaSchema.optional(),
  version: z.number().int(),
  updatedAt: z.string(),
});
export const authnResultSchema = z.object({
  result: z.enum(['allow', 'deny', 'ignore']),
  is_superuser: z.boolean(),
  /** With `allow` when asked `with_acl`: what the device may do, as EMQX ≥ 5.8 reads it from an HTTP authn answer. */
  acl: z
    .array(
      z.object({
        permission: z.enum(['allow', 'deny']),
        action: z.enum(['publish', 'subscribe', 'all']),
        topic: z.string(),
      }),
    )
    .optional(),
});
export const authzResultSchema = z.object({ result: z.enum(['allow', 'deny', 'ignore']) });
export { problemSchema } from '../../shared/errors.js';
