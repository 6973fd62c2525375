import type { MetricSummary, SeriesDocument, StoredPoint } from './report-repository.js';
import type { BucketStats } from './series-reader.js';
import { avgOf, mergeStats, type Stats } from './stats.js';
import { floorTo, MINUTE_MS } from './time.js';

type SeriesInput = Omit<SeriesDocument, '_id' | 'reportId'>;

export interface BuiltReport {
  /** Fleet series first (in metric order), then each device's (by id, in metric order). */
  series: SeriesInput[];
  metrics: Record<string, MetricSummary>;
  devicesReporting: number;
  onlineRatio: number;
}

function point(bucket: number, s: Stats): StoredPoint {
  return { t: new Date(bucket), count: s.count, sum: s.sum, min: s.min, max: s.max, first: s.first, last: s.last };
}

/**
 * Turns bucket statistics into the report's series and summary. Series are sparse: a bucket without
 * samples has no point. The fleet series merges every device's bucket; the summary merges everything.
 * The online ratio is the share of device × slot pairs with a sample, a slot being one bucket (one
 * minute for `raw`).
 */
export function buildReport(
  rows: Iterable<BucketStats>,
  input: { deviceIds: readonly string[]; metrics: readonly string[]; from: number; to: number; width: number },
): BuiltReport {
  const metricOrder = new Map(input.metrics.map((m, i) => [m, i]));
  const sorted = [...rows].sort(
    (a, b) =>
      (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0) ||
      metricOrder.get(a.metric)! - metricOrder.get(b.metric)! ||
      a.bucket - b.bucket,
  );
  const deviceSeries: SeriesInput[] = [];
  const fleet = new Map<string, Map<number, Stats>>(input.metrics.map((m) => [m, new Map()]));
  const totals = new Map<string, Stats>();
  const slotWidth = Math.max(input.width, MINUTE_MS);
  const slots = new Set<string>();
  const reporting = new Set<string>();
  let current: SeriesInput | undefined;
  for (const row of sorted) {
    if (!current || current.deviceId !== row.deviceId || current.metric !== row.metric) {
      current = { kind: 'device', deviceId: row.deviceId, metric: row.metric, points: [] };
      deviceSeries.push(current);
    }
    current.points.push(point(row.bucket, row.stats));
    const buckets = fleet.get(row.metric)!;
    const known = buckets.get(row.bucket);
    buckets.set(row.bucket, known ? mergeStats(known, row.stats) : row.stats);
    const total = totals.get(row.metric);
    totals.set(row.metric, total ? mergeStats(total, row.stats) : row.stats);
    reporting.add(row.deviceId);
    slots.add(`${row.deviceId}\u0000${floorTo(row.bucket, slotWidth)}`);
  }
  const fleetSeries: SeriesInput[] = input.metrics.map((metric) => ({
    kind: 'fleet',
    metric,
    points: [...fleet.get(metric)!].sort((a, b) => a[0] - b[0]).map(([bucket, s]) => point(bucket, s)),
  }));
  const metrics: Record<string, MetricSummary> = {};
  for (const metric of input.metrics) {
    const s = totals.get(metric);
    metrics[metric] = s
      ? { count: s.count, min: s.min, max: s.max, avg: avgOf(s) }
      : { count: 0, min: null, max: null, avg: null };
  }
  const slotCount = Math.ceil((input.to - input.from) / slotWidth) * input.deviceIds.length;
  return {
    series: [...fleetSeries, ...deviceSeries],
    metrics,
    devicesReporting: reporting.size,
    onlineRatio: slotCount === 0 ? 0 : slots.size / slotCount,
  };
}
