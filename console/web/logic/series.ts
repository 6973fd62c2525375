/**
 * The data behind a device's charts: which range a view shows, how it asks the APIs for it, and how live
 * samples join what was read. Columns are what uPlot draws: x in seconds, one y array per metric.
 */

export interface Sample {
  ts: string;
  metrics: Record<string, number>;
}

export const RANGES = [
  { id: 'live', label: 'Live (15 min)', ms: 15 * 60_000 },
  { id: '1h', label: '1 hour', ms: 3_600_000 },
  { id: '6h', label: '6 hours', ms: 6 * 3_600_000 },
  { id: '24h', label: '24 hours', ms: 86_400_000 },
  { id: '7d', label: '7 days', ms: 7 * 86_400_000 },
  { id: '30d', label: '30 days', ms: 30 * 86_400_000 },
] as const;
export type RangeId = (typeof RANGES)[number]['id'];

export function rangeOf(id: string | null | undefined): (typeof RANGES)[number] {
  return RANGES.find((range) => range.id === id) ?? RANGES[0];
}

/**
 * Points asked of the downsampled series API. The API picks the narrowest bucket of its ladder that gives
 * at most this many; 200 keeps a chart under a phone's width in pixels and makes 7 days hourly buckets
 * (168, read from hourly rollups) instead of 30-minute ones read from raw samples.
 */
export const HISTORY_POINTS = 200;

/** The series query of one metric over a range ending `now`. */
export function seriesQuery(metric: string, rangeMs: number, now: number): string {
  const params = new URLSearchParams({
    metric,
    from: new Date(now - rangeMs).toISOString(),
    to: new Date(now).toISOString(),
    points: String(HISTORY_POINTS),
  });
  return params.toString();
}

/**
 * A device's live window: samples by time, each time once (a sample read from the API and heard live is
 * the same sample), older than the window dropped. Kept sorted; appends of newer samples are O(1).
 */
export class LiveWindow {
  private readonly times: number[] = [];
  private readonly rows: Record<string, number>[] = [];
  private readonly metricNames = new Set<string>();

  constructor(private readonly spanMs: number) {}

  get size(): number {
    return this.times.length;
  }

  /** The time of the newest sample held (ms), if any. */
  get newest(): number | undefined {
    return this.times.at(-1);
  }

  get metrics(): string[] {
    return [...this.metricNames].sort();
  }

  /** Adds samples (any order); returns how many were new. */
  add(samples: readonly Sample[], now: number): number {
    let added = 0;
    for (const sample of samples) {
      const at = Date.parse(sample.ts);
      if (Number.isNaN(at) || at < now - this.spanMs) continue;
      for (const name of Object.keys(sample.metrics)) this.metricNames.add(name);
      let index = this.times.length;
      while (index > 0 && this.times[index - 1]! > at) index -= 1;
      if (index > 0 && this.times[index - 1] === at) {
        Object.assign(this.rows[index - 1]!, sample.metrics);
        continue;
      }
      this.times.splice(index, 0, at);
      this.rows.splice(index, 0, { ...sample.metrics });
      added += 1;
    }
    this.trim(now);
    return added;
  }

  /** Drops what fell out of the window. */
  trim(now: number): void {
    let drop = 0;
    while (drop < this.times.length && this.times[drop]! < now - this.spanMs) drop += 1;
    if (drop > 0) {
      this.times.splice(0, drop);
      this.rows.splice(0, drop);
    }
  }

  /** uPlot's columns for one metric: times in seconds and values (null where a sample lacks the metric). */
  columns(metric: string): [number[], (number | null)[]] {
    return [this.times.map((t) => t / 1000), this.rows.map((row) => row[metric] ?? null)];
  }

  latest(metric: string): { at: number; value: number } | undefined {
    for (let i = this.times.length - 1; i >= 0; i -= 1) {
      const value = this.rows[i]![metric];
      if (value !== undefined) return { at: this.times[i]!, value };
    }
    return undefined;
  }
}

/** A series API answer as chart columns: the bucket average, with min and max bands. */
export function historyColumns(points: readonly { t: string; avg: number; min: number; max: number }[]) {
  return [
    points.map((point) => Date.parse(point.t) / 1000),
    points.map((point) => point.avg),
    points.map((point) => point.min),
    points.map((point) => point.max),
  ] as [number[], number[], number[], number[]];
}
