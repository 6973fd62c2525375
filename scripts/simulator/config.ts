import { z } from 'zod';
import { baseConfigSchema, mqttFields } from '../../shared/config.js';
import { serviceMapSchema } from '../router/destinations.js';

export const simulatorConfigSchema = baseConfigSchema.extend({
  ...mqttFields,
  /** How many devices to simulate; each is its own MQTT connection, as real devices are. */
  SIM_DEVICES: z.coerce.number().int().min(1).max(10_000).default(20),
  /** Telemetry messages per second per device. */
  SIM_RATE: z.coerce.number().positive().max(1_000).default(1),
  /** Samples per message: 1 sends one object, more sends a batch (an array). */
  SIM_BATCH: z.coerce.number().int().min(1).max(100).default(1),
  SIM_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,40}$/)
    .default('sim'),
  /** Stop after this many seconds; 0 runs until interrupted. */
  SIM_DURATION: z.coerce.number().min(0).default(0),
  /** MQTT protocol version of the simulated devices: a fleet usually mixes both. */
  SIM_PROTOCOL: z.enum(['3.1.1', '5', 'mixed']).default('mixed'),
  /**
   * A JSON file `{ "<deviceId>": "<secret>" }` of registered devices; when given the devices log in with
   * their own credentials and their ids come from it. Without it they connect anonymously.
   */
  SIM_CREDENTIALS_FILE: z.string().optional(),
  /**
   * With a registry URL and an API key the simulator registers its fleet (bulk API) and keeps the
   * secrets in SIM_CREDENTIALS_FILE, so that the broker can enforce per-device credentials.
   */
  SIM_REGISTRY_URL: z.string().url().optional(),
  SIM_API_KEY: z.string().min(1).optional(),
  /** How long a simulated job install takes, and the share of installs that fail (job-runner.ts). */
  SIM_JOB_INSTALL_MS: z.coerce.number().int().min(0).max(600_000).default(1_500),
  SIM_JOB_FAILURE_RATE: z.coerce.number().min(0).max(1).default(0.05),
  /** Seconds between progress lines. */
  SIM_PROGRESS_EVERY: z.coerce.number().positive().default(2),
  /**
   * Health URLs of the stack's components, `name=url` separated by commas (`npm start` sets it): the
   * progress line names those that do not answer.
   */
  SIM_WATCH: serviceMapSchema.prefault(''),
  /**
   * telemetry-ingest's `/metrics` (`npm start` sets it): the progress line shows the samples stored per second
   * beside the messages sent (each message carries SIM_BATCH samples; the bridge batches messages, BATCH_*).
   */
  SIM_STORED_METRICS_URL: z.string().url().optional(),
});

export type SimulatorConfig = z.infer<typeof simulatorConfigSchema>;
