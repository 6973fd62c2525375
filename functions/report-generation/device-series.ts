import { NotFoundError } from '../../shared/errors.js';
import type { DeviceScopeReader } from './device-scope.js';
import type { RollupRepository } from './rollup-repository.js';
import { INGEST_LATENESS_MS } from './run-rollups.js';
import { readBucketStats } from './series-reader.js';
import type { TelemetrySource } from './telemetry-source.js';
import { alignRange, seriesWidth } from './time.js';

export interface SeriesDeps {
  devices: DeviceScopeReader;
  telemetry: TelemetrySource;
  rollups: RollupRepository;
}

export interface SeriesInput {
  deviceId: string;
  metric: string;
  from: Date;
  to: Date;
  points: number;
}

/**
 * A chart-ready series of at most `points` points. Downsampling is min/max/avg per bucket, not LTTB:
 * the bucket width is the narrowest of a fixed ladder (1 s … 1 year) that yields at most `points` aligned
 * buckets, each point carries min and max besides the average, so a spike never disappears between two
 * kept points and the same bucket gives the same point on every request (cacheable, comparable). Buckets of
 * whole days read daily rollups, of whole hours hourly rollups, finer ones raw samples.
 */
export async function deviceSeries(input: SeriesInput, deps: SeriesDeps) {
  const known = await deps.devices.resolve({ deviceIds: [input.deviceId] }, 1);
  if (known.unknown.length > 0) throw new NotFoundError(`unknown device ${input.deviceId}`, 'unknown_device');
  const width = seriesWidth(input, input.points);
  const range = alignRange(input, width);
  const fresh = ((await deps.rollups.watermark())?.getTime() ?? 0) - INGEST_LATENESS_MS;
  const { rows, segments } = await readBucketStats(
    {
      deviceIds: [input.deviceId],
      metrics: [input.metric],
      from: range.from.getTime(),
      to: range.to.getTime(),
      width,
      fresh,
      maxRows: input.points,
    },
    deps,
  );
  const points = [...rows.values()]
    .sort((a, b) => a.bucket - b.bucket)
    .map(({ bucket, stats: s }) => ({
      t: new Date(bucket).toISOString(),
      count: s.count,
      min: s.min,
      max: s.max,
      avg: s.sum / s.count,
      first: s.first,
      last: s.last,
    }));
  return {
    deviceId: input.deviceId,
    metric: input.metric,
    from: range.from.toISOString(),
    to: range.to.toISOString(),
    bucketMs: width,
    method: 'min-max-avg per bucket',
    sources: [...new Set(segments.map((s) => s.source))],
    points,
  };
}
