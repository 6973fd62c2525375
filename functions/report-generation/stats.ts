/**
 * Statistics of one metric over one bucket, and how buckets combine. Everything a rollup stores is
 * mergeable (count, sum, min, max, first/last with their sample times), so a day is exactly the merge
 * of its hours and a report bucket is exactly the merge of the rollups inside it.
 */
export interface Stats {
  count: number;
  sum: number;
  min: number;
  max: number;
  first: number;
  /** Sample time (epoch ms) of `first`: the earliest sample, not the earliest stored. */
  firstTs: number;
  last: number;
  lastTs: number;
}

export interface Sample {
  ts: Date;
  metrics: Record<string, number>;
}

export function statsOf(value: number, ts: number): Stats {
  return { count: 1, sum: value, min: value, max: value, first: value, firstTs: ts, last: value, lastTs: ts };
}

/** Merges `b` into a copy of `a`. Ties on sample time keep `a`'s first and `b`'s last. */
export function mergeStats(a: Stats, b: Stats): Stats {
  return {
    count: a.count + b.count,
    sum: a.sum + b.sum,
    min: Math.min(a.min, b.min),
    max: Math.max(a.max, b.max),
    first: b.firstTs < a.firstTs ? b.first : a.first,
    firstTs: Math.min(a.firstTs, b.firstTs),
    last: b.lastTs >= a.lastTs ? b.last : a.last,
    lastTs: Math.max(a.lastTs, b.lastTs),
  };
}

export function avgOf(stats: Pick<Stats, 'sum' | 'count'>): number {
  return stats.count === 0 ? 0 : stats.sum / stats.count;
}

/**
 * Samples as they are stored may repeat (at-least-once delivery stores a redelivered message twice) and
 * arrive out of order. A sample is identified by its device and sample time: when one time is stored more
 * than once, the value stored last wins for each metric. The result is sorted by sample time.
 */
export function dedupeSamples(samples: Iterable<Sample>): Sample[] {
  const byTime = new Map<number, Record<string, number>>();
  for (const sample of samples) {
    const ts = sample.ts.getTime();
    const known = byTime.get(ts);
    byTime.set(ts, known ? { ...known, ...sample.metrics } : { ...sample.metrics });
  }
  return [...byTime.entries()].sort((a, b) => a[0] - b[0]).map(([ts, metrics]) => ({ ts: new Date(ts), metrics }));
}

/** Per-metric statistics of (deduplicated) samples; non-finite values are not numbers and are skipped. */
export function statsOfSamples(samples: readonly Sample[], metrics?: ReadonlySet<string>): Map<string, Stats> {
  const out = new Map<string, Stats>();
  for (const sample of samples) {
    const ts = sample.ts.getTime();
    for (const [metric, value] of Object.entries(sample.metrics)) {
      if (typeof value !== 'number' || !Number.isFinite(value)) continue;
      if (metrics && !metrics.has(metric)) continue;
      const known = out.get(metric);
      out.set(metric, known ? mergeStats(known, statsOf(value, ts)) : statsOf(value, ts));
    }
  }
  return out;
}

/** Accumulates stats under string keys (device × metric × bucket); insertion order is kept. */
export class StatsTable {
  readonly rows = new Map<string, Stats>();

  add(key: string, stats: Stats): void {
    const known = this.rows.get(key);
    this.rows.set(key, known ? mergeStats(known, stats) : stats);
  }
}
