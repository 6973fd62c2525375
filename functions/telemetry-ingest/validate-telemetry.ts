import type { TelemetrySchema } from '../../shared/devices.js';
import { InvalidInputError, type ProblemIssue, zodIssues } from '../../shared/errors.js';
import { fastSamples } from './fast-parse.js';
import { type TelemetryLimits, type TelemetrySample, telemetryPayloadSchema } from './schema.js';

export interface ValidationPolicy extends TelemetryLimits {
  retentionMs: number;
  maxFutureMs: number;
}

/** A sample after validation: its position in the message, an absolute time, the metrics. */
export interface ValidSample {
  index: number;
  ts: Date;
  /** Whether `ts` is the device's own (else the time the message arrived). */
  deviceTimed: boolean;
  metrics: Record<string, number>;
  msgId?: string;
}

const MAX_REPORTED_ISSUES = 20;

/** An issue's path in an array of samples starts with the sample's position; a single sample's has none. */
const indexPrefix = (index: number) => `${index}.`;
const noPrefix = () => '';

/**
 * Checks one telemetry message and returns its samples, or throws a 400 whose `details` list every
 * issue (capped), so the device learns all that is wrong at once. Pure: the clock is a parameter.
 * Order: shape (zod) → time window → the device type's telemetry schema.
 */
export function validateTelemetry(
  payload: unknown,
  policy: ValidationPolicy,
  typeSchema: TelemetrySchema | undefined,
  receivedAt: Date,
  now: number,
): ValidSample[] {
  const samples = parseShape(payload, policy);
  const valid: ValidSample[] = new Array(samples.length);
  const oldest = now - policy.retentionMs;
  const newest = now + policy.maxFutureMs;
  let outOfWindow = false;
  for (let index = 0; index < samples.length; index += 1) {
    // Literal shapes, not a spread of a conditional object (an object more per sample, and a slow path of V8's).
    const { ts: at, metrics, msgId } = samples[index]!;
    const deviceTimed = at !== undefined;
    const ts = deviceTimed ? new Date(at) : receivedAt;
    valid[index] =
      msgId === undefined ? { index, ts, deviceTimed, metrics } : { index, ts, deviceTimed, metrics, msgId };
    const time = ts.getTime();
    if (!(time >= oldest && time <= newest)) outOfWindow = true;
  }
  // The refusals' wording is built only for a message that has one.
  const prefix = Array.isArray(payload) ? indexPrefix : noPrefix;
  if (outOfWindow)
    reject(
      'timestamp_out_of_range',
      'a sample is outside the accepted time window',
      timeIssues(valid, policy, now, prefix),
    );
  if (typeSchema) {
    reject(
      'schema_violation',
      "a sample does not match its device type's telemetry schema",
      schemaIssues(valid, typeSchema, prefix),
    );
  }
  return valid;
}

function parseShape(payload: unknown, policy: ValidationPolicy): TelemetrySample[] {
  // Counted before zod so that an oversized batch is refused without validating every sample.
  if (Array.isArray(payload) && payload.length > policy.maxSamples) {
    throw new InvalidInputError(
      `a batch holds at most ${policy.maxSamples} samples, this one ${payload.length}`,
      [{ path: '', code: 'too_many_samples', message: `at most ${policy.maxSamples} samples` }],
      'too_many_samples',
    );
  }
  // The usual shapes without zod; zod decides the rest and words the refusals.
  const fast = fastSamples(payload, policy);
  if (fast) return fast;
  const parsed = telemetryPayloadSchema(policy, payload).safeParse(payload);
  if (!parsed.success) {
    const issues = zodIssues(parsed.error).slice(0, MAX_REPORTED_ISSUES);
    throw new InvalidInputError(
      'the telemetry payload does not match { ts?, metrics: { name: number }, msgId? } or an array of those',
      issues,
      'invalid_payload',
    );
  }
  const data: TelemetrySample | TelemetrySample[] = parsed.data;
  return Array.isArray(data) ? data : [data];
}

function timeIssues(
  samples: ValidSample[],
  policy: ValidationPolicy,
  now: number,
  prefix: (i: number) => string,
): ProblemIssue[] {
  const oldest = now - policy.retentionMs;
  const newest = now + policy.maxFutureMs;
  const issues: ProblemIssue[] = [];
  for (const sample of samples) {
    const at = sample.ts.getTime();
    if (Number.isNaN(at) || at < oldest) {
      issues.push({
        path: `${prefix(sample.index)}ts`,
        code: 'too_old',
        message: `older than the retention (${Math.round(policy.retentionMs / 86_400_000)} days)`,
      });
    } else if (at > newest) {
      issues.push({
        path: `${prefix(sample.index)}ts`,
        code: 'in_future',
        message: `more than ${policy.maxFutureMs / 1000} s in the future`,
      });
    }
  }
  return issues;
}

function schemaIssues(samples: ValidSample[], schema: TelemetrySchema, prefix: (i: number) => string): ProblemIssue[] {
  const issues: ProblemIssue[] = [];
  for (const sample of samples) {
    for (const [name, value] of Object.entries(sample.metrics)) {
      const path = `${prefix(sample.index)}metrics.${name}`;
      const spec = schema.metrics[name];
      if (!spec) {
        if (!schema.allowUnknownMetrics)
          issues.push({ path, code: 'unknown_metric', message: `the device type declares no metric ${name}` });
        continue;
      }
      const unit = spec.unit ? ` ${spec.unit}` : '';
      if (spec.min !== undefined && value < spec.min)
        issues.push({ path, code: 'below_min', message: `${value} is below ${spec.min}${unit}` });
      if (spec.max !== undefined && value > spec.max)
        issues.push({ path, code: 'above_max', message: `${value} is above ${spec.max}${unit}` });
    }
  }
  return issues;
}

function reject(code: string, message: string, issues: ProblemIssue[]): void {
  if (issues.length > 0) throw new InvalidInputError(message, issues.slice(0, MAX_REPORTED_ISSUES), code);
}
