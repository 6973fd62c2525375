import { CronExpressionParser } from 'cron-parser';
import { z } from 'zod';
import { deviceIdSchema } from '../../shared/devices.js';
import { keyIssue } from '../../shared/json-values.js';

/**
 * The contract of jobs, modelled on AWS IoT Jobs (CreateJob, JobExecutionsRolloutConfig, AbortConfig,
 * TimeoutConfig, JobExecutionsRetryConfig, SchedulingConfig) and adapted to kiot's names.
 */

/** Job ids appear in topics (`devices/{id}/jobs/{jobId}/update`) and URLs: no `/`, `+`, `#`, `$`. */
const RESERVED_JOB_IDS = ['get', 'start-next', 'notify', 'notify-next'];
export const jobIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,64}$/, 'use 1-64 of A-Z a-z 0-9 _ -')
  .refine((id) => !RESERVED_JOB_IDS.includes(id), `a job id cannot be ${RESERVED_JOB_IDS.join(', ')}`)
  // The refinement as JSON Schema states it, so the OpenAPI documents say which ids are refused (400).
  .meta({ not: { enum: RESERVED_JOB_IDS } });

export const JOB_STATUSES = ['SCHEDULED', 'IN_PROGRESS', 'CANCELED', 'ABORTED', 'DELETION_IN_PROGRESS', 'COMPLETED'];
export const jobStatusSchema = z.enum([
  'SCHEDULED',
  'IN_PROGRESS',
  'CANCELED',
  'ABORTED',
  'DELETION_IN_PROGRESS',
  'COMPLETED',
]);
export type JobStatus = z.infer<typeof jobStatusSchema>;

export const executionStatusSchema = z.enum([
  'QUEUED',
  'IN_PROGRESS',
  'SUCCEEDED',
  'FAILED',
  'TIMED_OUT',
  'REJECTED',
  'REMOVED',
  'CANCELED',
]);
export type ExecutionStatus = z.infer<typeof executionStatusSchema>;

const metadataValue = z.union([z.string().max(256), z.number(), z.boolean()]);

/** A registry query: every given field must match (type equal, all tags present, metadata values equal). */
export const registryQuerySchema = z
  .object({
    type: z.string().min(1).max(64).optional(),
    tags: z.array(z.string().min(1).max(64)).max(20).optional(),
    metadata: z
      .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_-]{0,63}$/), metadataValue)
      .refine((m) => Object.keys(m).length <= 10, 'at most 10 metadata fields')
      .optional(),
  })
  .strict()
  .refine((q) => q.type !== undefined || (q.tags?.length ?? 0) > 0 || Object.keys(q.metadata ?? {}).length > 0, {
    message: 'a query needs at least one of type, tags, metadata',
  });

/** Devices in the job: the union of every selector (AWS: a list of things and thing groups). */
export const targetsSchema = z
  .object({
    deviceIds: z.array(deviceIdSchema).max(10_000).optional(),
    /** Devices carrying any of these tags. */
    tags: z.array(z.string().min(1).max(64)).max(50).optional(),
    /** Devices of any of these types. */
    types: z.array(z.string().min(1).max(64)).max(50).optional(),
    query: registryQuerySchema.optional(),
  })
  .strict()
  .refine(
    (t) => (t.deviceIds?.length ?? 0) + (t.tags?.length ?? 0) + (t.types?.length ?? 0) > 0 || t.query !== undefined,
    { message: 'name at least one target: deviceIds, tags, types or query' },
  );
export type Targets = z.infer<typeof targetsSchema>;

export const rolloutSchema = z
  .object({
    /** At most this many devices are notified (their execution released) per minute. */
    maximumPerMinute: z.number().int().min(1).max(1_000_000).optional(),
    exponentialRate: z
      .object({
        baseRatePerMinute: z.number().int().min(1).max(1_000_000),
        /** AWS: 1.1-5, one decimal. */
        incrementFactor: z.number().min(1.1).max(5),
        rateIncreaseCriteria: z
          .object({
            numberOfNotifiedDevices: z.number().int().min(1).optional(),
            numberOfSucceededDevices: z.number().int().min(1).optional(),
          })
          .strict()
          .refine((c) => c.numberOfNotifiedDevices !== undefined || c.numberOfSucceededDevices !== undefined, {
            message: 'name numberOfNotifiedDevices or numberOfSucceededDevices',
          }),
      })
      .strict()
      .optional(),
  })
  .strict();
export type Rollout = z.infer<typeof rolloutSchema>;

export const failureTypeSchema = z.enum(['FAILED', 'REJECTED', 'TIMED_OUT', 'ALL']);
export const abortSchema = z
  .object({
    criteria: z
      .array(
        z
          .object({
            failureType: failureTypeSchema,
            action: z.literal('CANCEL').default('CANCEL'),
            thresholdPercentage: z.number().gt(0).max(100),
            /** Finished executions needed before this criterion can abort the job. */
            minNumberOfExecutedDevices: z.number().int().min(1),
          })
          .strict(),
      )
      .min(1)
      .max(4),
  })
  .strict();
export type Abort = z.infer<typeof abortSchema>;

export const retrySchema = z
  .object({
    criteria: z
      .array(
        z
          .object({
            failureType: z.enum(['FAILED', 'TIMED_OUT', 'ALL']),
            numberOfRetries: z.number().int().min(0).max(10),
          })
          .strict(),
      )
      .min(1)
      .max(2),
  })
  .strict();
export type Retry = z.infer<typeof retrySchema>;

const cronSchema = z.string().refine((expression) => {
  try {
    CronExpressionParser.parse(expression, { tz: 'UTC' });
    return true;
  } catch {
    return false;
  }
}, 'a cron expression (5 fields, UTC)');

export const schedulingSchema = z
  .object({
    startTime: z.iso.datetime({ offset: true }).optional(),
    endTime: z.iso.datetime({ offset: true }).optional(),
    /** What happens at endTime (AWS: STOP_ROLLOUT, CANCEL, FORCE_CANCEL). */
    endBehavior: z.enum(['STOP_ROLLOUT', 'CANCEL', 'FORCE_CANCEL']).default('STOP_ROLLOUT'),
    /** Executions are released only inside a window: each starts at a cron time and lasts its duration. */
    maintenanceWindows: z
      .array(z.object({ startTime: cronSchema, durationInMinutes: z.number().int().min(1).max(1_440) }).strict())
      .max(8)
      .optional(),
  })
  .strict()
  .refine((s) => !s.startTime || !s.endTime || Date.parse(s.endTime) > Date.parse(s.startTime), {
    message: 'endTime must be after startTime',
    path: ['endTime'],
  });
export type Scheduling = z.infer<typeof schedulingSchema>;

const sha256Hex = z.string().regex(/^[a-f0-9]{64}$/, 'a SHA-256 digest in lower-case hex');

/** The OTA job type: the document names artifact, version and hash; devices download it with their own credential. */
export const otaDocumentSchema = z
  .object({
    operation: z.literal('ota'),
    artifactId: z.string().regex(/^[a-f0-9]{24}$/),
    version: z.string().min(1).max(64),
    sha256: sha256Hex,
    size: z.number().int().min(0),
    /** Filled in by the jobs service: where to download (relative to its base URL). */
    url: z.string().optional(),
  })
  .strict();

/** How deep a job document may nest: MongoDB stores documents nested at most 100 levels (a job holds it at 2). */
export const JOB_DOCUMENT_MAX_DEPTH = 64;

/** Keys the job record can store (shared/json-values.ts: no U+0000, no prototype key) and the nesting it can hold. */
function checkDocument(value: unknown, path: PropertyKey[], depth: number, ctx: z.RefinementCtx): void {
  if (value === null || typeof value !== 'object') return;
  if (depth > JOB_DOCUMENT_MAX_DEPTH) {
    ctx.addIssue({ code: 'custom', path, message: `the document nests deeper than ${JOB_DOCUMENT_MAX_DEPTH} levels` });
    return;
  }
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) checkDocument(item, [...path, i], depth + 1, ctx);
  } else {
    for (const [key, inner] of Object.entries(value)) {
      const issue = keyIssue(key);
      if (issue) ctx.addIssue({ code: 'custom', path: [...path, key], message: issue.message });
      else checkDocument(inner, [...path, key], depth + 1, ctx);
    }
  }
}

/** Any JSON object a device acts on, at most 32 KiB serialised (AWS: 32 KiB). */
export const jobDocumentSchema = z
  .record(z.string(), z.json())
  .refine((doc) => Buffer.byteLength(JSON.stringify(doc)) <= 32_768, 'the document is at most 32 KiB')
  .superRefine((doc, ctx) => checkDocument(doc, [], 1, ctx));

export const createJobSchema = z
  .object({
    jobId: jobIdSchema,
    description: z.string().max(2_048).optional(),
    /** `ota`: an OTA firmware update (`otaDocumentSchema`); `custom`: any document. */
    type: z.enum(['custom', 'ota']).default('custom'),
    document: jobDocumentSchema,
    targets: targetsSchema,
    /** SNAPSHOT: the targets at start; CONTINUOUS: devices that join the target set later get the job too. */
    targetSelection: z.enum(['SNAPSHOT', 'CONTINUOUS']).default('SNAPSHOT'),
    rollout: rolloutSchema.optional(),
    abort: abortSchema.optional(),
    /** An execution IN_PROGRESS longer than this becomes TIMED_OUT (AWS: 1-10080 minutes). */
    timeout: z
      .object({ inProgressTimeoutInMinutes: z.number().min(0.05).max(10_080) })
      .strict()
      .optional(),
    retry: retrySchema.optional(),
    scheduling: schedulingSchema.optional(),
  })
  .strict()
  .superRefine((job, ctx) => {
    if (job.type === 'ota') {
      const parsed = otaDocumentSchema.safeParse(job.document);
      if (!parsed.success) {
        for (const issue of parsed.error.issues)
          ctx.addIssue({ code: 'custom', path: ['document', ...issue.path.map(String)], message: issue.message });
      }
    }
  });
export type CreateJobInput = z.infer<typeof createJobSchema>;

export const cancelJobSchema = z
  .object({
    force: z.boolean().default(false),
    reasonCode: z.string().max(128).optional(),
    comment: z.string().max(2_048).optional(),
  })
  .strict();

export const listJobsQuerySchema = z
  .object({
    status: jobStatusSchema.optional(),
    type: z.enum(['custom', 'ota']).optional(),
    /** Jobs that target this device (an execution exists). */
    deviceId: deviceIdSchema.optional(),
    limit: z.coerce.number().int().min(1).max(500).default(50),
    cursor: z.string().max(128).optional(),
  })
  .strict();

export const listExecutionsQuerySchema = z
  .object({
    status: executionStatusSchema.optional(),
    limit: z.coerce.number().int().min(1).max(1_000).default(100),
    cursor: deviceIdSchema.optional(),
  })
  .strict();

export const statusCountsSchema = z.object({
  pending: z.number().int().describe('targeted, not yet released by the rollout'),
  QUEUED: z.number().int(),
  IN_PROGRESS: z.number().int(),
  SUCCEEDED: z.number().int(),
  FAILED: z.number().int(),
  TIMED_OUT: z.number().int(),
  REJECTED: z.number().int(),
  REMOVED: z.number().int(),
  CANCELED: z.number().int(),
});
export type StatusCounts = z.infer<typeof statusCountsSchema>;

export const jobViewSchema = z.object({
  jobId: z.string(),
  type: z.enum(['custom', 'ota']),
  description: z.string().optional(),
  status: jobStatusSchema,
  version: z.number().int(),
  document: z.record(z.string(), z.unknown()),
  targets: z.record(z.string(), z.unknown()),
  targetSelection: z.enum(['SNAPSHOT', 'CONTINUOUS']),
  rollout: z.record(z.string(), z.unknown()).optional(),
  abort: z.record(z.string(), z.unknown()).optional(),
  timeout: z.record(z.string(), z.unknown()).optional(),
  retry: z.record(z.string(), z.unknown()).optional(),
  scheduling: z.record(z.string(), z.unknown()).optional(),
  reasonCode: z.string().optional(),
  comment: z.string().optional(),
  forceCanceled: z.boolean().optional(),
  currentRatePerMinute: z.number().optional(),
  targetCount: z.number().int(),
  counts: statusCountsSchema,
  createdAt: z.string(),
  startedAt: z.string().optional(),
  completedAt: z.string().optional(),
  lastUpdatedAt: z.string(),
});

export const executionViewSchema = z.object({
  jobId: z.string(),
  deviceId: z.string(),
  status: executionStatusSchema.or(z.literal('PENDING')),
  statusDetails: z.record(z.string(), z.string()).optional(),
  versionNumber: z.number().int(),
  executionNumber: z.number().int(),
  retryAttempt: z.number().int(),
  queuedAt: z.string(),
  startedAt: z.string().optional(),
  lastUpdatedAt: z.string(),
  completedAt: z.string().optional(),
  timeoutAt: z.string().optional(),
});

/** statusDetails: string → string, at most 10 entries (AWS). */
export const statusDetailsSchema = z
  .record(z.string().regex(/^[A-Za-z0-9:_-]{1,128}$/), z.string().max(1_024))
  .refine((d) => Object.keys(d).length <= 10, 'at most 10 entries');

const clientToken = z.string().min(1).max(64).optional();

/** `devices/{id}/jobs/get` and `devices/{id}/jobs/{jobId}/get`. */
export const getRequestSchema = z
  .object({ clientToken, includeJobDocument: z.boolean().default(true), executionNumber: z.number().int().optional() })
  .strip();

/** `devices/{id}/jobs/start-next`. */
export const startNextRequestSchema = z
  .object({
    clientToken,
    statusDetails: statusDetailsSchema.optional(),
    stepTimeoutInMinutes: z.number().min(0.05).max(10_080).optional(),
  })
  .strip();

/** `devices/{id}/jobs/{jobId}/update`. */
export const updateRequestSchema = z
  .object({
    clientToken,
    status: z.enum(['IN_PROGRESS', 'SUCCEEDED', 'FAILED', 'REJECTED']),
    statusDetails: statusDetailsSchema.optional(),
    /** The versionNumber the device last saw: a stale update is refused with the current state. */
    expectedVersion: z.number().int().min(1).optional(),
    executionNumber: z.number().int().min(1).optional(),
    stepTimeoutInMinutes: z.number().min(0.05).max(10_080).optional(),
    includeJobExecutionState: z.boolean().default(false),
    includeJobDocument: z.boolean().default(false),
  })
  .strip();
export type UpdateRequest = z.infer<typeof updateRequestSchema>;

/** The `data` of a device request event: the bridge puts the device's JSON payload there, plus the job id. */
export const deviceRequestDataSchema = z.record(z.string(), z.unknown());

export const presenceDataSchema = z.object({}).passthrough();
export const tickDataSchema = z.object({ task: z.string().optional() }).passthrough();
