/**
 * Time buckets. Every bucket is a half-open UTC interval [start, start + width), aligned to multiples of
 * its width since the Unix epoch (so hours and days start at :00 and 00:00 UTC).
 */
export const MINUTE_MS = 60_000;
export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;

/** Report intervals: `raw` keeps every sample; the others are bucket widths. */
export const INTERVALS = ['raw', '1m', '5m', '1h', '1d'] as const;
export type Interval = (typeof INTERVALS)[number];
export type BucketInterval = Exclude<Interval, 'raw'>;

export const INTERVAL_MS: Record<BucketInterval, number> = {
  '1m': MINUTE_MS,
  '5m': 5 * MINUTE_MS,
  '1h': HOUR_MS,
  '1d': DAY_MS,
};

export function floorTo(ms: number, width: number): number {
  return Math.floor(ms / width) * width;
}

export function ceilTo(ms: number, width: number): number {
  return Math.ceil(ms / width) * width;
}

export interface Range {
  from: Date;
  to: Date;
}

/** A Date holds at most ±8.64e15 ms from the epoch (ECMA-262 §21.4.1.1, "Time Values and Time Range"). */
const MAX_TIME_MS = 8.64e15;

/**
 * The range widened to whole buckets, so that no bucket covers only part of its data; never past the
 * last whole bucket a Date can hold (a range that ends at the end of time would otherwise round to an
 * invalid Date).
 */
export function alignRange(range: Range, width: number): Range {
  const from = Math.max(floorTo(range.from.getTime(), width), ceilTo(-MAX_TIME_MS, width));
  const to = Math.min(ceilTo(range.to.getTime(), width), floorTo(MAX_TIME_MS, width));
  return { from: new Date(from), to: new Date(Math.max(from, to)) };
}

export function bucketCount(range: Range, width: number): number {
  const aligned = alignRange(range, width);
  return Math.round((aligned.to.getTime() - aligned.from.getTime()) / width);
}

/**
 * The interval chosen when a report names none: the finest of 1m, 5m, 1h, 1d that keeps every series
 * within a point budget. The budget shrinks as the fleet grows (50,000 points over all devices, at least
 * 24 and at most 1,000 per series), so a fleet report stays readable and a long one reads rollups.
 */
export function autoInterval(range: Range, deviceCount: number): BucketInterval {
  const perSeries = Math.max(24, Math.min(1_000, Math.floor(50_000 / Math.max(1, deviceCount))));
  for (const interval of ['1m', '5m', '1h'] as const) {
    if (bucketCount(range, INTERVAL_MS[interval]) <= perSeries) return interval;
  }
  return '1d';
}

/** Widths `GET /devices/{id}/series` may use, each a multiple of the one before where it matters. */
export const SERIES_WIDTHS_MS = [
  1_000,
  5_000,
  10_000,
  30_000,
  MINUTE_MS,
  2 * MINUTE_MS,
  5 * MINUTE_MS,
  10 * MINUTE_MS,
  15 * MINUTE_MS,
  30 * MINUTE_MS,
  HOUR_MS,
  2 * HOUR_MS,
  3 * HOUR_MS,
  6 * HOUR_MS,
  12 * HOUR_MS,
  DAY_MS,
  2 * DAY_MS,
  7 * DAY_MS,
  14 * DAY_MS,
  28 * DAY_MS,
  91 * DAY_MS,
  364 * DAY_MS,
];

/** The narrowest width on the ladder whose aligned buckets over `range` number at most `points`. */
export function seriesWidth(range: Range, points: number): number {
  for (const width of SERIES_WIDTHS_MS) if (bucketCount(range, width) <= points) return width;
  return ceilTo((range.to.getTime() - range.from.getTime()) / Math.max(1, points - 1), DAY_MS);
}

export function hourOf(ms: number): number {
  return floorTo(ms, HOUR_MS);
}

export function dayOf(ms: number): number {
  return floorTo(ms, DAY_MS);
}
