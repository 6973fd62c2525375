import { z } from 'zod';
import { apiKeyFields } from '../../shared/api-keys.js';
import { baseConfigSchema, httpUrl, mongoFields, redisFields, sinkFields } from '../../shared/config.js';
import { eventAuthFields } from '../../shared/event-auth.js';

const int = (min: number, max: number, fallback: number) => z.coerce.number().int().min(min).max(max).default(fallback);

/**
 * The environment of telemetry-ingest, validated once at start (`loadConfig`). Defaults are the
 * production values; the limits are per message so that one device cannot make one event expensive.
 */
export const configSchema = baseConfigSchema.extend({
  ...mongoFields,
  ...redisFields,
  ...sinkFields,
  /**
   * Where the refused messages of a telemetry batch are recorded (the dead-letters service, as the bridge's
   * DEAD_LETTER_SINK): a 2xx batch cannot hand them to the Trigger's dead-letter sink, so the function does.
   */
  DEAD_LETTER_SINK: httpUrl,
  /** App API keys (shared/api-keys.ts): JSON `[{id, hash, scopes}]`; reads need `telemetry:read`, rule edits `telemetry:write`. */
  ...apiKeyFields,
  ...eventAuthFields,
  /** Raw samples older than this are refused at ingest and removed by the TTL index and the sweep. */
  TELEMETRY_RETENTION_DAYS: int(1, 3650, 30),
  /** Clock skew a device may have: samples further in the future are refused. */
  TELEMETRY_MAX_FUTURE_SECONDS: int(0, 86_400, 300),
  TELEMETRY_MAX_SAMPLES_PER_MESSAGE: int(1, 10_000, 500),
  TELEMETRY_MAX_METRICS_PER_SAMPLE: int(1, 1_000, 64),
  /** Messages per `POST /devices/{id}/telemetry/batch` (a batch event holds up to shared MAX_BATCH_ITEMS). */
  HTTP_INGEST_MAX_MESSAGES: int(1, 10_000, 500),
  /** Sweep interval of the local timer; 0 = only on `dev.knative.sources.ping` (production). */
  RETENTION_SWEEP_INTERVAL_SECONDS: int(0, 86_400 * 7, 0),
  /** Token bucket per device, counted in messages (telemetry and state): sustained rate and burst. */
  RATE_LIMIT_PER_SECOND: z.coerce.number().positive().max(1_000_000).default(20),
  RATE_LIMIT_BURST: int(1, 1_000_000, 100),
  /** At most one `rate_limited` notice per device on its errors topic per this interval. */
  RATE_LIMIT_NOTICE_INTERVAL_MS: int(0, 3_600_000, 1_000),
  /** How long a state report's event id is remembered in Redis (telemetry's dedup is its samples' unique `_id`). */
  DEDUP_TTL_SECONDS: int(10, 7 * 86_400, 900),
  /** Group commit: one insertMany per this many ms or this many samples, this many at once. */
  GROUP_COMMIT_MAX_WAIT_MS: int(0, 1_000, 2),
  GROUP_COMMIT_MAX_DOCS: int(1, 100_000, 1_000),
  GROUP_COMMIT_MAX_IN_FLIGHT: int(1, 64, 4),
  /** The reported document of a shadow, serialised (AWS IoT: 8 KiB), and its nesting depth. */
  SHADOW_MAX_BYTES: int(64, 1_048_576, 8_192),
  SHADOW_MAX_DEPTH: int(1, 32, 6),
  /**
   * Registry reads are cached per device this long: a disable takes effect within it. 10 s rather than
   * the directory's 2 s default: at the evening peak every active device would otherwise cost a query
   * every 2 s (half a fleet of 100,000 devices per second).
   */
  DEVICE_CACHE_TTL_MS: int(0, 600_000, 10_000),
  ALERT_RULE_CACHE_TTL_MS: int(0, 600_000, 5_000),
  /** Positive device-credential checks are remembered this long (scrypt is slow by design). */
  CREDENTIAL_CACHE_TTL_MS: int(0, 3_600_000, 30_000),
  /**
   * Live telemetry streams (GET /devices/{id}/telemetry/stream): a comment this often keeps idle proxies from
   * closing them; after the maximum the stream ends and the browser reconnects (to whichever replica
   * answers: Knative can scale in or drain one); a client this many events behind gets one `gap` instead.
   */
  LIVE_HEARTBEAT_SECONDS: int(1, 300, 15),
  LIVE_STREAM_MAX_SECONDS: int(5, 3_600, 300),
  LIVE_MAX_QUEUE: int(10, 100_000, 1_000),
  /** Prefix of every Redis key this capability writes. */
  REDIS_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9:_-]{1,64}$/)
    .default('kiot:ti'),
});

export type Config = z.infer<typeof configSchema>;
