import { z } from 'zod';
import { apiKeyFields } from '../../shared/api-keys.js';
import { baseConfigSchema, httpUrl, mongoFields, sinkFields } from '../../shared/config.js';
import { deviceIdSchema, metricNameSchema } from '../../shared/devices.js';
import { eventAuthFields } from '../../shared/event-auth.js';
import { INTERVALS } from './time.js';

export const SERVICE = 'report-generation';
export const SOURCE = '/kiot/report-generation';

/** The event types this capability consumes and produces (docs/architecture.md, CloudEvents table). */
export const EVENT_TYPES = { ping: 'dev.knative.sources.ping', generated: 'io.kiot.report.generated' } as const;

const int = (min: number, max: number, fallback: number) => z.coerce.number().int().min(min).max(max).default(fallback);

/** The environment of report-generation, validated once at start (`loadConfig`). */
export const configSchema = baseConfigSchema.extend({
  ...mongoFields,
  ...sinkFields,
  ...apiKeyFields,
  ...eventAuthFields,
  /** Where apps reach this function; links in reports and events are absolute when set, else relative. */
  PUBLIC_BASE_URL: httpUrl.optional(),
  /** Local stand-in for the PingSources: run rollups and due schedules every this many seconds; 0 = off. */
  SCHEDULE_TICK_SECONDS: int(0, 86_400, 0),
  /** A report that needs rollups older than this first brings them up to date. */
  ROLLUP_MAX_AGE_SECONDS: int(0, 86_400 * 7, 900),
  /** Upper bound of one report: device × bucket × metric rows. */
  REPORT_MAX_ROWS: int(1_000, 50_000_000, 5_000_000),
  REPORT_MAX_DEVICES: int(1, 1_000_000, 10_000),
});
export type Config = z.infer<typeof configSchema>;

export const AGGREGATIONS = ['count', 'sum', 'min', 'max', 'avg', 'first', 'last'] as const;
export type Aggregation = (typeof AGGREGATIONS)[number];

/** ISO-8601 with a zone, or epoch milliseconds; always a Date after parsing. */
export const instantSchema = z
  .union([z.iso.datetime({ offset: true }), z.number().finite().min(0).max(8.64e15)])
  .transform((value) => new Date(value));

/** Which devices a report covers: exactly one of ids, type, tag, or the whole fleet. */
export const scopeSchema = z.union([
  z.object({ deviceIds: z.array(deviceIdSchema).min(1).max(10_000) }).strict(),
  z.object({ type: z.string().min(1).max(128) }).strict(),
  z.object({ tag: z.string().min(1).max(128) }).strict(),
  z.object({ fleet: z.literal(true) }).strict(),
]);
export type Scope = z.infer<typeof scopeSchema>;

// zod 4 keeps refinements inside the schema, so the object stays an object (its shape documents the query).
// A range with one end invalid reports that end only (zod runs the refinement all the same: both must be Dates).
const rangeRefine = <S extends z.ZodType<{ from: Date; to: Date }>>(schema: S): S =>
  schema.refine(
    (value) => !(value.from instanceof Date && value.to instanceof Date) || value.from.getTime() < value.to.getTime(),
    { message: '`from` must be before `to`', path: ['to'] },
  );

/** The same instant in a query string: ISO-8601 with a zone, or epoch milliseconds as digits. */
const queryInstantSchema = z
  .union([z.iso.datetime({ offset: true }), z.coerce.number().finite().min(0).max(8.64e15)])
  .transform((value) => new Date(value));

/** `POST /reports` */
export const reportRequestSchema = rangeRefine(
  z
    .object({
      scope: scopeSchema,
      from: instantSchema,
      to: instantSchema,
      metrics: z.array(metricNameSchema).min(1).max(64),
      /** Absent: chosen from the range and the number of devices (`autoInterval`). */
      interval: z.enum(INTERVALS).optional(),
      aggregations: z.array(z.enum(AGGREGATIONS)).min(1).default(['count', 'min', 'max', 'avg']),
      title: z.string().max(200).optional(),
    })
    .strict(),
);
export type ReportRequest = z.infer<typeof reportRequestSchema>;

export const FORMATS = ['json', 'csv', 'html'] as const;
export type Format = (typeof FORMATS)[number];

/** `POST /report-schedules`: a report over the previous day or week, generated on the ping tick. */
export const scheduleRequestSchema = z
  .object({
    name: z.string().min(1).max(200).optional(),
    cadence: z.enum(['daily', 'weekly']),
    scope: scopeSchema,
    metrics: z.array(metricNameSchema).min(1).max(64),
    interval: z.enum(INTERVALS).optional(),
    aggregations: z.array(z.enum(AGGREGATIONS)).min(1).default(['count', 'min', 'max', 'avg']),
    format: z.enum(FORMATS).default('html'),
  })
  .strict();
export type ScheduleRequest = z.infer<typeof scheduleRequestSchema>;

/** `GET /reports/{id}?format=` */
export const reportQuerySchema = z.object({ format: z.enum(FORMATS).optional() }).strict();

/** `GET /devices/{id}/series` */
export const seriesQuerySchema = rangeRefine(
  z
    .object({
      metric: metricNameSchema,
      from: queryInstantSchema,
      to: queryInstantSchema,
      points: z.coerce.number().int().min(2).max(10_000).default(500),
    })
    .strict(),
);

/**
 * `dev.knative.sources.ping` data: the PingSource posts `{"task": …}`; its `kiottask` extension says the
 * same and is what the Trigger filters on.
 */
export const pingDataSchema = z.preprocess(
  // A PingSource without `data` posts an empty body: no data, the extension decides.
  (value) => (value === '' || value === null ? undefined : value),
  z
    .object({ task: z.enum(['rollups', 'reports']).optional() })
    .passthrough()
    .optional(),
);
export const TASKS = ['rollups', 'reports'] as const;
export type Task = (typeof TASKS)[number];

/** `POST /rollups/run` takes no body, or `{}`. */
export const rollupRunSchema = z.object({}).strict().optional();

/** A report's id: `r_<32 hex>` when asked for, `s_<schedule id>_<yyyymmdd>` when a schedule made it. */
export const reportIdSchema = z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, 'a report id');
/** A report schedule's id: `sch_<32 hex>`. */
export const scheduleIdSchema = z.string().regex(/^sch_[0-9a-f]{32}$/, 'a schedule id (sch_ and 32 hex digits)');
