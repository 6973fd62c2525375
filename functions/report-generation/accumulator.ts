import { dedupeSamples, type Stats } from './stats.js';
import type { DeviceHour, RawSample } from './telemetry-source.js';
import { floorTo, HOUR_MS } from './time.js';

interface HourEntry {
  deviceId: string;
  hour: number;
  /** Sample times seen, as offsets into the hour (small integers: compact in a Set). */
  seen: Set<number>;
  /** A sample time came twice: this hour is recomputed exactly from all its samples. */
  conflicted: boolean;
  /** Stats per metric and bucket, keyed `metric \0 bucket`. */
  cells: Map<string, Stats>;
}

export interface Cell {
  deviceId: string;
  hour: number;
  metric: string;
  bucket: number;
  stats: Stats;
}

function add(cells: Map<string, Stats>, metric: string, bucket: number, value: number, ts: number): void {
  const key = `${metric}\u0000${bucket}`;
  const s = cells.get(key);
  if (!s) {
    cells.set(key, {
      count: 1,
      sum: value,
      min: value,
      max: value,
      first: value,
      firstTs: ts,
      last: value,
      lastTs: ts,
    });
    return;
  }
  // In place: one object per cell, not one per sample.
  s.count += 1;
  s.sum += value;
  if (value < s.min) s.min = value;
  if (value > s.max) s.max = value;
  if (ts < s.firstTs) [s.first, s.firstTs] = [value, ts];
  if (ts >= s.lastTs) [s.last, s.lastTs] = [value, ts];
}

/**
 * Streams raw samples, in any order, into per device-hour statistics at a bucket width (≤ or ≥ an hour),
 * holding no samples: only the sample times seen per hour, to notice a time stored twice. Such an hour is
 * then recomputed exactly from its samples (`resolve`), with the rule of `dedupeSamples`, so the result
 * never depends on the order the server returned documents in.
 */
export class HourAccumulator {
  private readonly hours = new Map<string, HourEntry>();
  cellCount = 0;

  constructor(
    private readonly width: number,
    private readonly metrics?: ReadonlySet<string>,
  ) {}

  add(sample: RawSample): void {
    const ts = sample.ts.getTime();
    const hour = floorTo(ts, HOUR_MS);
    const key = `${sample.deviceId}\u0000${hour}`;
    let entry = this.hours.get(key);
    if (!entry) {
      entry = { deviceId: sample.deviceId, hour, seen: new Set(), conflicted: false, cells: new Map() };
      this.hours.set(key, entry);
    }
    if (entry.conflicted) return;
    if (entry.seen.has(ts - hour)) {
      entry.conflicted = true;
      return;
    }
    entry.seen.add(ts - hour);
    const before = entry.cells.size;
    this.addSample(entry.cells, ts, sample.metrics);
    this.cellCount += entry.cells.size - before;
  }

  conflicts(): DeviceHour[] {
    return [...this.hours.values()].filter((e) => e.conflicted).map((e) => ({ deviceId: e.deviceId, hour: e.hour }));
  }

  /** Recomputes conflicted hours from all of their stored samples (ties: the greater `_id` wins). */
  resolve(samples: readonly RawSample[]): void {
    const byHour = new Map<string, RawSample[]>();
    for (const s of samples) {
      const key = `${s.deviceId}\u0000${floorTo(s.ts.getTime(), HOUR_MS)}`;
      byHour.set(key, [...(byHour.get(key) ?? []), s]);
    }
    for (const [key, group] of byHour) {
      const entry = this.hours.get(key);
      if (!entry?.conflicted) continue;
      group.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      this.cellCount -= entry.cells.size;
      entry.cells = new Map();
      for (const sample of dedupeSamples(group)) this.addSample(entry.cells, sample.ts.getTime(), sample.metrics);
      this.cellCount += entry.cells.size;
      entry.conflicted = false;
    }
  }

  *cells(): Iterable<Cell> {
    for (const entry of this.hours.values()) {
      for (const [key, stats] of entry.cells) {
        const at = key.indexOf('\u0000');
        yield {
          deviceId: entry.deviceId,
          hour: entry.hour,
          metric: key.slice(0, at),
          bucket: Number(key.slice(at + 1)),
          stats,
        };
      }
    }
  }

  /** Every device-hour that had samples. */
  deviceHours(): DeviceHour[] {
    return [...this.hours.values()].map((e) => ({ deviceId: e.deviceId, hour: e.hour }));
  }

  private addSample(cells: Map<string, Stats>, ts: number, metrics: Record<string, number>): void {
    const bucket = floorTo(ts, this.width);
    for (const metric in metrics) {
      const value = metrics[metric];
      if (typeof value !== 'number' || !Number.isFinite(value)) continue;
      if (this.metrics && !this.metrics.has(metric)) continue;
      add(cells, metric, bucket, value, ts);
    }
  }
}
