import { DomainRefusalError } from '../../shared/errors.js';
import { HourAccumulator } from './accumulator.js';
import type { RollupRepository } from './rollup-repository.js';
import { mergeStats, type Stats } from './stats.js';
import type { TelemetrySource } from './telemetry-source.js';
import { DAY_MS, floorTo, HOUR_MS } from './time.js';

/** Where one stretch of a report's range is read from. */
export interface Segment {
  source: 'day' | 'hour' | 'raw';
  from: number;
  to: number;
}

const clamp = (value: number, low: number, high: number) => Math.min(high, Math.max(low, value));

/**
 * Splits an aligned range by source. Buckets of whole days read daily rollups, of whole hours hourly
 * rollups, finer ones raw samples. Rollups are only trusted before `fresh` (the hour where the last
 * rollup run's watermark, less ingest lateness, falls); after it the same buckets are computed from raw
 * samples, so a report that reaches "now" still sees the last minutes. A year-long report thus reads
 * 365 daily rollups per device and at most a few hours of raw samples.
 */
export function planSegments(from: number, to: number, width: number, fresh: number): Segment[] {
  const segments: Segment[] = [];
  const push = (source: Segment['source'], a: number, b: number) => {
    if (b > a) segments.push({ source, from: a, to: b });
  };
  if (width % HOUR_MS !== 0) {
    push('raw', from, to);
    return segments;
  }
  const hourEnd = clamp(floorTo(fresh, HOUR_MS), from, to);
  if (width % DAY_MS === 0) {
    const dayEnd = clamp(floorTo(fresh, DAY_MS), from, to);
    push('day', from, dayEnd);
    push('hour', dayEnd, Math.max(dayEnd, hourEnd));
    push('raw', Math.max(dayEnd, hourEnd), to);
  } else {
    push('hour', from, hourEnd);
    push('raw', hourEnd, to);
  }
  return segments;
}

export interface StatsQuery {
  deviceIds: readonly string[];
  metrics: readonly string[];
  from: number;
  to: number;
  /** Bucket width in ms; 1 keeps every sample time apart (`raw`). */
  width: number;
  fresh: number;
  maxRows: number;
}

export interface BucketStats {
  deviceId: string;
  metric: string;
  bucket: number;
  stats: Stats;
}

/**
 * Reads the statistics of every device × metric × bucket of a query into memory. Rows are bounded by
 * `maxRows` (422 beyond), and the stats are mergeable, so reading rollups or raw samples gives the same
 * numbers.
 */
export async function readBucketStats(
  query: StatsQuery,
  deps: { telemetry: TelemetrySource; rollups: RollupRepository },
): Promise<{ rows: Map<string, BucketStats>; segments: Segment[] }> {
  const rows = new Map<string, BucketStats>();
  const wanted = new Set(query.metrics);
  const add = (deviceId: string, metric: string, at: number, stats: Stats) => {
    const bucket = floorTo(at, query.width);
    const id = `${deviceId}\u0000${metric}\u0000${bucket}`;
    const known = rows.get(id);
    if (known) {
      known.stats = mergeStats(known.stats, stats);
      return;
    }
    if (rows.size >= query.maxRows) tooLarge(query.maxRows);
    rows.set(id, { deviceId, metric, bucket, stats });
  };

  const segments = planSegments(query.from, query.to, query.width, query.fresh);
  for (const segment of segments) {
    if (segment.source === 'raw') {
      const acc = new HourAccumulator(query.width, wanted);
      let scanned = 0;
      for await (const sample of deps.telemetry.scan({
        deviceIds: query.deviceIds,
        from: new Date(segment.from),
        to: new Date(segment.to),
      })) {
        acc.add(sample);
        if (++scanned % 10_000 === 0 && acc.cellCount + rows.size > query.maxRows) tooLarge(query.maxRows);
      }
      const conflicts = acc.conflicts();
      if (conflicts.length > 0) acc.resolve(await deps.telemetry.hours(conflicts));
      for (const cell of acc.cells()) add(cell.deviceId, cell.metric, cell.bucket, cell.stats);
      continue;
    }
    const rollups = await deps.rollups.find(segment.source, query.deviceIds, segment.from, segment.to);
    for (const rollup of rollups) {
      for (const [metric, stats] of rollup.metrics)
        if (wanted.has(metric)) add(rollup.deviceId, metric, rollup.start, stats);
    }
  }
  return { rows, segments };
}

function tooLarge(maxRows: number): never {
  throw new DomainRefusalError(
    'report_too_large',
    `the report would exceed ${maxRows} rows; narrow the range or scope, or pick a coarser interval`,
    { maxRows },
  );
}
