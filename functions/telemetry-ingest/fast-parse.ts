import { DEVICE_ID_PATTERN as DEVICE_ID, METRIC_NAME_PATTERN as METRIC_NAME } from '../../shared/devices.js';
import type { TelemetryMessage } from './ingest-telemetry.js';
import { MSG_ID_PATTERN as MSG_ID, type TelemetryLimits, type TelemetrySample } from './schema.js';

/**
 * Fast paths in front of zod for the shapes nearly every message has: a batch item exactly as the bridge writes
 * it, and a payload of samples with epoch-millisecond times. zod's compiled object checks, its result objects and
 * the date regex were 8 % of telemetry-ingest's CPU in the storage step (issue 12). Each function answers
 * `undefined` for anything it is not sure of, and zod decides as before, so the errors a device hears are zod's;
 * what it accepts, zod accepts with the same result (test/unit/telemetry-ingest/fast-parse.test.ts compares them
 * over generated inputs). The id, metric-name and msgId patterns are the schemas' own (imported).
 */

/** What `Date#toISOString` writes for the years 0–9999: the bridge's `time`. */
const ISO_MILLIS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
/** timestampSchema's number branch (schema.ts). */
const MAX_TS = 8.64e15;

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Days of each month; February's leap day is `leapYear`'s. */
const MONTH_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
const leapYear = (year: number) => year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
const digits = (text: string, from: number, count: number) => {
  let value = 0;
  for (let i = from; i < from + count; i += 1) value = value * 10 + text.charCodeAt(i) - 48;
  return value;
};

/**
 * `time` in epoch ms if it is an instant zod's RFC 3339 pattern accepts (a month's days, February 29 of
 * Gregorian leap years only, hours below 24, no leap second) in the form `toISOString` writes, else undefined.
 * By arithmetic: Date.parse and toISOString cost ~3 µs an item here, more than the zod check they would spare.
 */
function isoMillis(time: string): number | undefined {
  if (!ISO_MILLIS.test(time)) return undefined;
  const year = digits(time, 0, 4);
  const month = digits(time, 5, 2);
  const day = digits(time, 8, 2);
  const hours = digits(time, 11, 2);
  const minutes = digits(time, 14, 2);
  const seconds = digits(time, 17, 2);
  // Date.UTC reads the years 0–99 as 1900–1999: those are zod's to decide.
  if (year < 100 || month < 1 || month > 12 || day < 1 || hours > 23 || minutes > 59 || seconds > 59) return undefined;
  if (day > (month === 2 && leapYear(year) ? 29 : MONTH_DAYS[month - 1]!)) return undefined;
  return Date.UTC(year, month - 1, day, hours, minutes, seconds, digits(time, 20, 3));
}

/**
 * `isoMillis` of the last `time` read: the items of a batch often share their millisecond (the bridge stamps each
 * with its receive time, many a millisecond under load; bridge/telemetry-items.ts formats it once per ms), and
 * the check was ~0.8 % of the function's CPU in the storage step (issue 12). `isoMillis` is pure.
 */
let lastTime: string | undefined;
let lastAt: number | undefined;
function timeMillis(time: string): number | undefined {
  if (time !== lastTime) {
    lastAt = isoMillis(time);
    lastTime = time;
  }
  return lastAt;
}

/**
 * The message of a batch item that telemetryBatchItemSchema, deviceIdSchema and isJsonContentType
 * (shared/telemetry-batch.ts) all accept, or undefined: its id, subject, `time` as a Date (`dateOf` its epoch ms)
 * and data. Its `time` must be in the form `toISOString` writes (`isoMillis`). The message is built here, not from
 * an intermediate item object (an object less per message; issue 12's garbage).
 */
export function fastBatchItem(raw: unknown, dateOf: (at: number) => Date): TelemetryMessage | undefined {
  if (!isRecord(raw)) return undefined;
  const { id, subject, time, datacontenttype } = raw;
  if (typeof id !== 'string' || id.length < 1 || id.length > 256) return undefined;
  if (typeof subject !== 'string' || !DEVICE_ID.test(subject)) return undefined;
  if (datacontenttype !== undefined && datacontenttype !== 'application/json') return undefined;
  const at = typeof time === 'string' ? timeMillis(time) : undefined;
  if (at === undefined) return undefined;
  return { eventId: id, deviceId: subject, receivedAt: dateOf(at), payload: raw.data };
}

/** sampleSchema's metrics: 1 to maxMetrics finite numbers under metric names. */
function fastMetrics(metrics: unknown, maxMetrics: number): metrics is Record<string, number> {
  if (!isRecord(metrics)) return false;
  let count = 0;
  for (const name in metrics) {
    // An inherited key is no JSON's; `__proto__` is left to zod, whose result object treats it its own way.
    if (!Object.hasOwn(metrics, name) || name === '__proto__' || !METRIC_NAME.test(name)) return false;
    const value = metrics[name];
    if (typeof value !== 'number' || !Number.isFinite(value)) return false;
    count += 1;
  }
  return count >= 1 && count <= maxMetrics;
}

/** One sample of sampleSchema (strict: no other keys) with no time or an epoch-ms time, or undefined. */
function fastSample(value: unknown, limits: TelemetryLimits): TelemetrySample | undefined {
  if (!isRecord(value)) return undefined;
  for (const key in value) if (key !== 'ts' && key !== 'metrics' && key !== 'msgId') return undefined;
  const { ts, metrics, msgId } = value;
  if (ts !== undefined && (typeof ts !== 'number' || !(ts >= 0 && ts <= MAX_TS))) return undefined;
  if (msgId !== undefined && (typeof msgId !== 'string' || !MSG_ID.test(msgId))) return undefined;
  if (!fastMetrics(metrics, limits.maxMetrics)) return undefined;
  // Literal shapes rather than spreads: a spread of a conditional object is a slow path of its own.
  if (ts === undefined) return msgId === undefined ? { metrics } : { metrics, msgId };
  return msgId === undefined ? { ts, metrics } : { ts, metrics, msgId };
}

/** The samples of a payload telemetryPayloadSchema accepts (one sample or 1 to maxSamples of them), or undefined. */
export function fastSamples(payload: unknown, limits: TelemetryLimits): TelemetrySample[] | undefined {
  if (!Array.isArray(payload)) {
    const sample = fastSample(payload, limits);
    return sample && [sample];
  }
  if (payload.length < 1 || payload.length > limits.maxSamples) return undefined;
  const samples: TelemetrySample[] = new Array(payload.length);
  for (let i = 0; i < payload.length; i += 1) {
    const sample = fastSample(payload[i], limits);
    if (!sample) return undefined;
    samples[i] = sample;
  }
  return samples;
}
