import { z } from 'zod';

/** The status of a dead letter: waiting for a replay, or replayed (a later failure makes it pending again). */
export const deadLetterStatusSchema = z.enum(['pending', 'replayed']);
export type DeadLetterStatus = z.infer<typeof deadLetterStatusSchema>;

const isoDate = z.iso.datetime({ offset: true }).transform((text) => new Date(text));

/** What every listing and bulk replay may filter on. */
export const deadLetterFilterSchema = z
  .object({
    status: deadLetterStatusSchema.optional(),
    type: z.string().min(1).max(256).optional(),
    source: z.string().min(1).max(1024).optional(),
    subject: z.string().min(1).max(256).optional(),
    /** The failed destination, `knativeerrordest`. */
    destination: z.string().min(1).max(2048).optional(),
    eventId: z.string().min(1).max(256).optional(),
    /** Dead-lettered (first) at or after / before. */
    since: isoDate.optional(),
    until: isoDate.optional(),
  })
  .strict();
export type DeadLetterFilter = z.infer<typeof deadLetterFilterSchema>;

/** `GET /dead-letters?…`: filters plus cursor pagination, newest first. */
export const listQuerySchema = deadLetterFilterSchema
  .extend({
    limit: z.coerce.number().int().min(1).max(500).default(50),
    cursor: z.string().min(1).max(512).optional(),
  })
  .strict();
export type ListQuery = z.infer<typeof listQuerySchema>;

/** Where a replay goes: the subscriber that failed (`knativeerrordest`), or the Broker (`K_SINK`). */
export const replayViaSchema = z.enum(['subscriber', 'broker']).default('subscriber');
export type ReplayVia = z.infer<typeof replayViaSchema>;

export const replayOneQuerySchema = z.object({ via: replayViaSchema }).strict();

/** `POST /dead-letters/replay`: which dead letters (pending by default) and how many in this call. */
export const replayAllBodySchema = deadLetterFilterSchema
  .extend({
    status: deadLetterStatusSchema.default('pending'),
    via: replayViaSchema,
    limit: z.number().int().min(1).optional(),
  })
  .strict();
export type ReplayAllBody = z.infer<typeof replayAllBodySchema>;

/** `GET /dead-letter-summary?since=…&devices=…`: the window of "recent" (default: the last hour). */
export const summaryQuerySchema = z
  .object({
    since: isoDate.optional(),
    devices: z.coerce.number().int().min(1).max(200).default(20),
  })
  .strict();

/** A dead letter's id: the first 32 characters of a base64url sha-256 (`deadLetterId`). */
export const deadLetterIdSchema = z.string().regex(/^[A-Za-z0-9_-]{32}$/, 'a dead letter id (32 base64url characters)');

const deliveryErrorSchema = z.object({
  destination: z.string().nullable().describe('knativeerrordest: the subscriber that failed'),
  code: z.number().int().nullable().describe('knativeerrorcode: its last status'),
  data: z.string().nullable().describe('knativeerrordata (base64, possibly truncated)'),
  text: z.string().optional().describe('the same, decoded, when it is UTF-8 text'),
});

/** A dead letter as the API shows it (dead-letter-view.ts). */
export const deadLetterViewSchema = z.object({
  id: z.string(),
  status: deadLetterStatusSchema,
  event: z
    .object({ id: z.string(), source: z.string(), type: z.string(), specversion: z.string() })
    .catchall(z.unknown())
    .describe('the CloudEvent as it arrived: attributes, extensions, and data (or data_base64)'),
  error: deliveryErrorSchema,
  deadLetterCount: z.number().int(),
  firstDeadLetteredAt: z.iso.datetime(),
  lastDeadLetteredAt: z.iso.datetime(),
  replayCount: z.number().int(),
  replayedAt: z.iso.datetime().optional(),
  replayedTo: z.string().optional(),
  lastReplay: z
    .object({ at: z.iso.datetime(), to: z.string(), status: z.number().int().optional(), error: z.string().optional() })
    .optional(),
});

export const deadLetterPageSchema = z.object({
  items: z.array(deadLetterViewSchema),
  /** Pass as `cursor` for the next page; null on the last one. */
  next: z.string().nullable(),
});

const replayOutcomeSchema = z.object({
  id: z.string(),
  outcome: z.enum(['replayed', 'failed', 'superseded']),
  destination: z.string(),
  status: z.number().int().optional(),
  error: z.string().optional(),
});
export const replayOneResultSchema = replayOutcomeSchema;
/** `GET /dead-letter-summary`: the pending count and the devices refused recently, most recent first. */
export const summarySchema = z.object({
  since: z.iso.datetime(),
  pending: z.number().int(),
  failingDevices: z.array(
    z.object({
      deviceId: z.string(),
      refusals: z.number().int().describe('dead-letter records of this device that arrived (again) since `since`'),
      lastAt: z.iso.datetime(),
      lastType: z.string(),
      lastError: deliveryErrorSchema,
    }),
  ),
});

export const replayAllResultSchema = z.object({
  replayed: z.number().int(),
  failed: z.number().int(),
  more: z.boolean(),
  results: z.array(replayOutcomeSchema),
});
