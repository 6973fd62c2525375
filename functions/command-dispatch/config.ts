import { z } from 'zod';
import { apiKeyFields } from '../../shared/api-keys.js';
import { baseConfigSchema, mongoFields, redisFields, sinkFields } from '../../shared/config.js';
import { eventAuthFields } from '../../shared/event-auth.js';

/** The environment of command-dispatch, validated once at start (`loadConfig`). */
export const commandDispatchConfigSchema = baseConfigSchema.extend({
  ...mongoFields,
  ...redisFields,
  ...sinkFields,
  /** JSON array of hashed app API keys (shared/api-keys.ts); routes need `commands:read` / `commands:write`. */
  ...apiKeyFields,
  ...eventAuthFields,
  /** Prefix of every Redis key and pub/sub channel this function uses (tests give each run its own). */
  REDIS_KEY_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9:_-]{0,64}$/)
    .default('kiot:'),
  /** Commands that may wait QUEUED for one device; one more is refused with 429. */
  COMMAND_QUEUE_CAP: z.coerce.number().int().min(1).max(10_000).default(100),
  /** How often a SENT command without any answer is sent again when its device reconnects. */
  COMMAND_MAX_RESENDS: z.coerce.number().int().min(0).max(20).default(3),
  COMMAND_DEFAULT_TTL_SECONDS: z.coerce.number().int().min(1).default(3600),
  COMMAND_DEFAULT_TIMEOUT_SECONDS: z.coerce.number().int().min(1).max(3600).default(30),
  /** In-process sweep timer; 0 turns it off (in Knative the PingSource drives the sweep). */
  COMMAND_SWEEP_INTERVAL_MS: z.coerce.number().int().min(0).default(10_000),
  /** telemetry-ingest's `REDIS_PREFIX`: both capabilities read and write the same shadow hash. */
  SHADOW_REDIS_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9:_-]{1,64}$/)
    .default('kiot:ti'),
  /** Size and nesting of the desired document (AWS IoT: 8 KiB), as telemetry-ingest limits reported. */
  SHADOW_MAX_BYTES: z.coerce.number().int().min(64).max(1_048_576).default(8_192),
  SHADOW_MAX_DEPTH: z.coerce.number().int().min(1).max(32).default(6),
  /** Commands moved per sweep run, so one run stays short. */
  COMMAND_SWEEP_BATCH: z.coerce.number().int().min(1).max(10_000).default(500),
});
export type CommandDispatchConfig = z.infer<typeof commandDispatchConfigSchema>;
