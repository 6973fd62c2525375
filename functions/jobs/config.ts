import { z } from 'zod';
import { apiKeyFields } from '../../shared/api-keys.js';
import { baseConfigSchema, httpUrl, mongoFields, mqttFields, sinkFields } from '../../shared/config.js';
import { eventAuthFields } from '../../shared/event-auth.js';

/** The environment of jobs, validated once at start (`loadConfig`). */
export const jobsConfigSchema = baseConfigSchema.extend({
  ...mongoFields,
  ...sinkFields,
  /** Routes need `jobs:read` / `jobs:write`, `artifacts:read` / `artifacts:write` (shared/api-keys.ts). */
  ...apiKeyFields,
  ...eventAuthFields,
  /** In-process scheduler passes; 0 turns the timer off (on Knative the PingSource and its chain drive them). */
  JOBS_TICK_INTERVAL_MS: z.coerce.number().int().min(0).default(1_000),
  /** How long a chained tick runs passes before it hands over to the next tick. */
  JOBS_TICK_HOLD_MS: z.coerce.number().int().min(1_000).max(300_000).default(20_000),
  /** Pause between passes within a held tick. */
  JOBS_PASS_INTERVAL_MS: z.coerce.number().int().min(50).max(60_000).default(1_000),
  /** Executions created, released or timed out per step of a pass. */
  JOBS_BATCH_SIZE: z.coerce.number().int().min(1).max(10_000).default(1_000),
  /** The largest firmware upload (bytes); default 512 MiB. */
  ARTIFACT_MAX_BYTES: z.coerce
    .number()
    .int()
    .min(1)
    .default(512 * 1024 * 1024),
  /** Where devices reach this service (the download URL in OTA job documents). */
  JOBS_PUBLIC_URL: httpUrl.default('http://127.0.0.1:8080'),
  /**
   * Publish device messages (notify, notify-next, answers) straight to this MQTT broker over one connection per
   * instance, with JOBS_MQTT_USERNAME/PASSWORD of a client that may publish to `devices/+/jobs/#`. Unset: through
   * the Broker as `io.kiot.mqtt.publish` events, which the bridge publishes (two HTTP deliveries per message).
   */
  JOBS_MQTT_URL: mqttFields.MQTT_URL.optional(),
  JOBS_MQTT_USERNAME: z.string().min(1).optional(),
  JOBS_MQTT_PASSWORD: z.string().min(1).optional(),
  /** How long publishing may go without a PUBACK before the request or tick fails with 503 (and is retried). */
  JOBS_MQTT_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(10_000),
  /** How long a verified device credential is remembered for artifact downloads. */
  DEVICE_AUTH_TTL_MS: z.coerce.number().int().min(0).max(600_000).default(60_000),
});
export type JobsConfig = z.infer<typeof jobsConfigSchema>;
