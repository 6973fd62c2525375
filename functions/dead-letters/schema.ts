import { z } from 'zod';

/** The status of a dead letter: waiting for a replay, or replayed (a later failure makes it pending again). */
export const deadLetterStatusSchema = z.enum(['pending', 'replayed']);
export type DeadLetterStatus = z.infer<typeof deadLetterStatusSchema>;

const isoDate = z
  .string()
  .refine((text) => !Number.isNaN(Date.parse(text)), 'must be an ISO-8601 date-time')
  .transform((text) => new Date(text));

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
