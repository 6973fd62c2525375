import { z } from 'zod';
import { apiKeyFields } from '../../shared/api-keys.js';
import { baseConfigSchema, httpUrl, mongoFields } from '../../shared/config.js';
import { eventAuthFields } from '../../shared/event-auth.js';

const int = (min: number, max: number, fallback: number) => z.coerce.number().int().min(min).max(max).default(fallback);

/**
 * The environment of dead-letters, validated once at start (`loadConfig`). It stores what Knative could not
 * deliver, so it needs only MongoDB; `K_SINK` (the Broker) is where a replay goes when the original
 * subscriber is unknown or not allowed.
 */
export const deadLettersConfigSchema = baseConfigSchema.extend({
  ...mongoFields,
  ...apiKeyFields,
  ...eventAuthFields,
  K_SINK: httpUrl.optional(),
  /**
   * Host suffixes a replay may POST to (comma-separated, e.g. `.svc.cluster.local,.svc`). Anyone who can
   * send this service an event chooses its `knativeerrordest`, so production restricts replays to the
   * cluster's own Services; a destination outside goes through `K_SINK` instead. Empty: any host.
   */
  DEAD_LETTERS_REPLAY_HOSTS: z
    .string()
    .default('')
    .transform((text) =>
      text
        .split(',')
        .map((host) => host.trim().toLowerCase())
        .filter(Boolean),
    ),
  /** How long one replay POST may take (the subscriber handles the event in that time). */
  DEAD_LETTERS_REPLAY_TIMEOUT_MS: int(100, 600_000, 30_000),
  /** Replays of one `POST /dead-letters/replay` at once, and at most how many per call. */
  DEAD_LETTERS_REPLAY_CONCURRENCY: int(1, 64, 4),
  DEAD_LETTERS_REPLAY_MAX: int(1, 10_000, 500),
});

export type DeadLettersConfig = z.infer<typeof deadLettersConfigSchema>;
