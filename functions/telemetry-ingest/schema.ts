import { z } from 'zod';
import { deviceIdSchema, metricNameSchema } from '../../shared/devices.js';
import { problemSchema } from '../../shared/errors.js';

/** A sample's optional message id (sampleSchema's `msgId`). */
export const MSG_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

/** The event types this capability consumes (docs/architecture.md, CloudEvents table). */
export const EVENT_TYPES = {
  telemetry: 'io.kiot.telemetry.received',
  /** Many device messages in one event (shared/telemetry-batch.ts). */
  telemetryBatch: 'io.kiot.telemetry.batch',
  state: 'io.kiot.state.reported',
  connected: 'io.kiot.device.connected',
  disconnected: 'io.kiot.device.disconnected',
  ping: 'dev.knative.sources.ping',
} as const;

/** The event types it produces. */
export const EMITTED_TYPES = {
  mqttPublish: 'io.kiot.mqtt.publish',
  alertRaised: 'io.kiot.alert.raised',
  alertCleared: 'io.kiot.alert.cleared',
} as const;

export const SOURCE = '/kiot/telemetry-ingest';

/** `ts`: ISO-8601 with a zone, or epoch milliseconds (docs/architecture.md, MQTT topics). */
export const timestampSchema = z.union([z.iso.datetime({ offset: true }), z.number().finite().min(0).max(8.64e15)]);

/** The limits a message is checked against; from the config, so that they are one place. */
export interface TelemetryLimits {
  maxSamples: number;
  maxMetrics: number;
}

/**
 * One sample: `{ ts?, metrics: { name: number }, msgId? }`. Strict, so that a misspelt field is refused
 * and reported rather than dropped silently. JSON cannot carry NaN or Infinity; `finite` keeps a
 * JavaScript producer (HTTP ingest of a parsed body) to the same rule.
 */
export function sampleSchema(limits: TelemetryLimits) {
  return z
    .object({
      ts: timestampSchema.optional(),
      metrics: z
        .record(metricNameSchema, z.number().finite())
        .refine((metrics) => Object.keys(metrics).length >= 1, { message: 'a sample needs at least one metric' })
        .refine((metrics) => Object.keys(metrics).length <= limits.maxMetrics, {
          message: `at most ${limits.maxMetrics} metrics per sample`,
        }),
      msgId: z.string().regex(MSG_ID_PATTERN).optional(),
    })
    .strict();
}

const payloadSchemas = new Map<string, { one: z.ZodType<TelemetrySample>; batch: z.ZodType<TelemetrySample[]> }>();

/**
 * A message on `devices/{id}/telemetry`: one sample or a batch of them. Chosen by the payload's shape
 * rather than a `z.union`, whose failure is one `invalid_union` issue at the root: the device should
 * hear which field of which sample is wrong. Built once per set of limits: zod 4 compiles an object
 * schema on its first parse, so a schema built per message costs that compilation every time.
 */
export function telemetryPayloadSchema(
  limits: TelemetryLimits,
  payload: unknown,
): z.ZodType<TelemetrySample | TelemetrySample[]> {
  const key = `${limits.maxSamples}/${limits.maxMetrics}`;
  let schemas = payloadSchemas.get(key);
  if (!schemas) {
    const sample = sampleSchema(limits);
    schemas = { one: sample, batch: z.array(sample).min(1).max(limits.maxSamples) };
    payloadSchemas.set(key, schemas);
  }
  return Array.isArray(payload) ? schemas.batch : schemas.one;
}

export type TelemetrySample = z.infer<ReturnType<typeof sampleSchema>>;

/** A state report is a partial JSON object (JSON merge patch, RFC 7386); keys are checked separately. */
export const statePatchSchema = z.record(z.string(), z.unknown());

/** What the bridge may put into connected/disconnected events; only the time is used. */
export const presenceDataSchema = z.unknown();

export const comparisonSchema = z.enum(['>', '>=', '<', '<=']);
export type Comparison = z.infer<typeof comparisonSchema>;

/**
 * An alert rule, for one device or every device of a type. It raises after `forSamples` consecutive
 * breaching samples spanning at least `forSeconds`, and clears after as many samples on the far side
 * of `clearThreshold` (hysteresis; defaults to `threshold`).
 */
const alertRuleFields = z
  .object({
    name: z.string().min(1).max(200).optional(),
    deviceId: deviceIdSchema.optional(),
    deviceType: z.string().min(1).max(128).optional(),
    metric: metricNameSchema,
    comparison: comparisonSchema,
    threshold: z.number().finite(),
    clearThreshold: z.number().finite().optional(),
    forSamples: z.number().int().min(1).max(10_000).default(1),
    forSeconds: z
      .number()
      .int()
      .min(0)
      .max(7 * 86_400)
      .default(0),
    severity: z.enum(['info', 'warning', 'critical']).default('warning'),
    enabled: z.boolean().default(true),
  })
  .strict();

export const alertRuleInputSchema = alertRuleFields
  .refine((rule) => (rule.deviceId === undefined) !== (rule.deviceType === undefined), {
    message: 'give exactly one of deviceId or deviceType',
    path: ['deviceId'],
  })
  .refine(
    (rule) =>
      rule.clearThreshold === undefined ||
      (rule.comparison.startsWith('>') ? rule.clearThreshold <= rule.threshold : rule.clearThreshold >= rule.threshold),
    { message: 'clearThreshold must lie on the safe side of threshold', path: ['clearThreshold'] },
  );

export type AlertRuleInput = z.infer<typeof alertRuleInputSchema>;

/** An alert rule as the API answers it (ETag: its version). */
export const alertRuleSchema = alertRuleFields.extend({
  id: z.string(),
  version: z.number().int(),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
});
export type AlertRule = z.infer<typeof alertRuleSchema>;
export const alertRuleListSchema = z.object({ items: z.array(alertRuleSchema) });

const isoOrNull = z.iso.datetime().nullable();

/** One raised (and maybe cleared) alert, as `GET /alerts` lists it. */
export const alertViewSchema = z.object({
  id: z.string(),
  ruleId: z.string(),
  deviceId: deviceIdSchema,
  metric: metricNameSchema,
  comparison: comparisonSchema,
  threshold: z.number(),
  clearThreshold: z.number(),
  severity: z.string(),
  status: z.enum(['active', 'cleared']),
  raisedAt: z.iso.datetime(),
  raisedValue: z.number().nullable(),
  clearedAt: isoOrNull,
  clearedValue: z.number().nullable().optional(),
  /** Someone saw it (POST /alerts/{id}/acknowledge): when, and the API key that said so. */
  acknowledgedAt: isoOrNull,
  acknowledgedBy: z.string().nullable(),
});
export const alertPageSchema = z.object({ items: z.array(alertViewSchema), nextCursor: z.string().nullable() });

/** `GET /devices/{id}/telemetry`: raw samples in time order. */
export const telemetryPageSchema = z.object({
  deviceId: deviceIdSchema,
  items: z.array(
    z.object({ ts: z.iso.datetime(), metrics: z.record(z.string(), z.number()), msgId: z.string().optional() }),
  ),
  nextCursor: z.string().nullable(),
});

/** `GET /devices/{id}/state`: the shadow (shared/shadow.ts) and presence. */
export const deviceStateSchema = z.object({
  deviceId: deviceIdSchema,
  shadow: z.object({
    reported: z.record(z.string(), z.unknown()),
    desired: z.record(z.string(), z.unknown()),
    delta: z.record(z.string(), z.unknown()),
    version: z.number().int(),
    /** When each leaf was last set (epoch ms), per side. */
    timestamps: z.object({
      reported: z.record(z.string(), z.number()),
      desired: z.record(z.string(), z.number()),
    }),
    /** The last change; null for a shadow never written. */
    updatedAt: isoOrNull,
  }),
  presence: z.object({
    status: z.enum(['online', 'offline', 'unknown']),
    since: isoOrNull,
    lastSeen: isoOrNull,
    connectedAt: isoOrNull,
    disconnectedAt: isoOrNull,
  }),
});

/** `POST /devices/{id}/telemetry`: what became of the posted message. */
export const ingestResultSchema = z.object({
  eventId: z.string(),
  outcome: z.enum(['stored', 'duplicate']),
  samples: z.number().int().optional(),
});

/** `POST /devices/{id}/telemetry/batch`: what became of each posted message, in the order posted. */
export const ingestBatchResultSchema = z.object({
  items: z.array(
    z.object({
      index: z.number().int(),
      eventId: z.string(),
      outcome: z.enum(['stored', 'duplicate', 'refused']),
      /** What `POST /devices/{id}/telemetry` would have answered for this message alone. */
      status: z.number().int(),
      samples: z.number().int().optional(),
      error: problemSchema.shape.error.optional(),
    }),
  ),
  stored: z.number().int(),
  duplicates: z.number().int(),
  refused: z.number().int(),
});

const limitParam = z.coerce.number().int().min(1).max(1_000).default(100);
/**
 * ISO-8601 with a zone, or epoch milliseconds as digits. Not `z.coerce.number()`: that reads an empty `to=` as 0
 * (schemathesis found it accepted), and a number past 8.64e15 is no Date (ECMA-262 §21.4.1.1).
 */
const timeParam = z.union([
  z.iso.datetime({ offset: true }),
  z
    .string()
    .regex(/^\d{1,16}$/, 'epoch milliseconds')
    .transform(Number)
    .pipe(z.number().max(8.64e15)),
]);

/** GET /devices/{id}/telemetry */
export const telemetryQuerySchema = z
  .object({
    from: timeParam.optional(),
    to: timeParam.optional(),
    metric: z.array(metricNameSchema).max(64).default([]),
    limit: limitParam,
    cursor: z.string().max(512).optional(),
  })
  .strict();

/** GET /alerts */
export const alertQuerySchema = z
  .object({
    deviceId: deviceIdSchema.optional(),
    ruleId: z.string().max(128).optional(),
    status: z.enum(['active', 'cleared']).optional(),
    limit: limitParam,
    cursor: z.string().max(512).optional(),
  })
  .strict();

/** GET /alert-rules */
export const alertRuleQuerySchema = z
  .object({ deviceId: deviceIdSchema.optional(), deviceType: z.string().max(128).optional(), limit: limitParam })
  .strict();

/** The message on `devices/{id}/errors`: why a message was refused. */
export interface RejectionNotice {
  code: string;
  message: string;
  eventId: string;
  details?: unknown;
}

/** `GET /telemetry-summary`: the live side of a fleet overview. */
export const telemetrySummarySchema = z.object({
  /** Devices connected now (presence). */
  online: z.number().int(),
  /** Messages stored per second, averaged over the last 10 whole seconds. */
  messagesPerSecond: z.number(),
  /** Messages stored in each of the last 60 whole seconds, oldest first. */
  rate: z.array(z.object({ t: z.iso.datetime(), messages: z.number().int() })),
  /** Alerts raised and not cleared. */
  openAlerts: z.number().int(),
});

/**
 * `GET /presence?ids=a,b` (those devices; with `status=online`, those of them online now) or
 * `?offset&limit` (who is online now, newest first; `status=online` says the same). Every combination the
 * parameters allow means something, so the document's schema is the whole contract.
 */
export const presenceQuerySchema = z
  .object({
    ids: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,64}(,[A-Za-z0-9._-]{1,64}){0,99}$/, '1-100 device ids, comma-separated')
      .transform((text) => text.split(','))
      .pipe(z.array(deviceIdSchema).min(1).max(100))
      .optional(),
    status: z.literal('online').optional(),
    offset: z.coerce.number().int().min(0).max(1_000_000).default(0),
    limit: z.coerce.number().int().min(1).max(500).default(100),
  })
  .strict();

const presenceSchema = z.object({
  status: z.enum(['online', 'offline', 'unknown']),
  since: isoOrNull,
  lastSeen: isoOrNull,
  connectedAt: isoOrNull,
  disconnectedAt: isoOrNull,
});
export const presencePageSchema = z.object({
  items: z.array(presenceSchema.extend({ deviceId: deviceIdSchema })),
  /** With `status=online`: the offset of the next page, or null (a device that connects meanwhile may shift it). */
  nextOffset: z.number().int().nullable(),
});

/** An alert rule's id (a UUID, made when the rule is created). */
export const ruleIdSchema = z.uuid();
/** An alert episode's id as GET /alerts lists it (`<rule id>:<device id>:<episode>`); one that names none is a 404. */
export const alertIdSchema = z.string().min(1).max(256);
