import type { HandlerContext } from '../../shared/function-app.js';
import type { Rollup, RollupRepository, Mark } from './rollup-repository.js';
import { dedupeSamples, mergeStats, statsOfSamples, type Stats } from './stats.js';
import type { DeviceHour, TelemetrySource } from './telemetry-source.js';
import { DAY_MS, HOUR_MS, dayOf } from './time.js';

export interface RollupDeps {
  telemetry: TelemetrySource;
  rollups: RollupRepository;
  clock: () => Date;
}

export interface RollupRunResult {
  hours: number;
  days: number;
  watermark: string;
}

/**
 * How long a sample may take from its `receivedAt` stamp to being visible to a query (in-flight group
 * commits). Each run looks back this far past the previous watermark; recomputing is idempotent, so
 * overlap costs work, never correctness.
 */
export const INGEST_LATENESS_MS = 2 * 60_000;
const MARKS_PER_PASS = 5_000;
/** Raw reads cover at most this much time per query, so late data from long ago does not drag in months. */
const MAX_WINDOW_MS = 7 * DAY_MS;

/**
 * Incremental, idempotent rollups. Only hours that received samples since the last run are recomputed,
 * each from all of its raw samples (never `$inc`), and then the days they belong to from their hours.
 * Late data re-marks its hour, which re-opens its day.
 */
export async function runRollups(_input: unknown, deps: RollupDeps, ctx: HandlerContext): Promise<RollupRunResult> {
  const runStart = deps.clock();
  await markChangedHours(deps, runStart);
  let hours = 0;
  let days = 0;
  for (;;) {
    const marks = await deps.rollups.pendingMarks(runStart, MARKS_PER_PASS);
    if (marks.length === 0) break;
    hours += await recomputeHours(marks, deps);
    days += await recomputeDays(marks, deps);
    await deps.rollups.clearMarks(marks);
  }
  ctx.logger.info({ rollups: { hours, days } }, 'rollups run');
  return { hours, days, watermark: runStart.toISOString() };
}

/** Step 1: record every device-hour that got samples since the watermark, then move the watermark. */
async function markChangedHours(deps: RollupDeps, runStart: Date): Promise<void> {
  const previous = (await deps.rollups.watermark())?.getTime() ?? 0;
  const changed = await deps.telemetry.changedSince(new Date(Math.max(0, previous - INGEST_LATENESS_MS)));
  // Marks first, watermark after: a crash in between re-reads the same changes, never loses them.
  await deps.rollups.mark(changed, runStart);
  await deps.rollups.setWatermark(runStart);
}

/** Step 2: each marked hour recomputed from its raw samples and replaced; hours now empty removed. */
async function recomputeHours(marks: Mark[], deps: RollupDeps): Promise<number> {
  const wanted = new Set(marks.map((m) => key(m)));
  const seen = new Set<string>();
  for (const window of windows(marks)) {
    let batch: Rollup[] = [];
    for await (const group of deps.telemetry.read(window)) {
      const id = key(group);
      if (!wanted.has(id)) continue;
      seen.add(id);
      const metrics = statsOfSamples(dedupeSamples(group.samples));
      batch.push({ deviceId: group.deviceId, level: 'hour', start: group.hour, metrics });
      if (batch.length >= 1_000) {
        await deps.rollups.replace(batch, deps.clock());
        batch = [];
      }
    }
    await deps.rollups.replace(batch, deps.clock());
  }
  await deps.rollups.remove('hour', marks.filter((m) => !seen.has(key(m))));
  return wanted.size;
}

/** Step 3: each day that holds a marked hour recomputed as the merge of its (up to 24) hourly rollups. */
async function recomputeDays(marks: Mark[], deps: RollupDeps): Promise<number> {
  const byDay = new Map<number, Set<string>>();
  for (const m of marks) {
    const day = dayOf(m.hour);
    byDay.set(day, (byDay.get(day) ?? new Set()).add(m.deviceId));
  }
  let count = 0;
  for (const [day, devices] of byDay) {
    const hourly = await deps.rollups.find('hour', [...devices], day, day + DAY_MS);
    const merged = new Map<string, Map<string, Stats>>();
    for (const hour of hourly) {
      const metrics = merged.get(hour.deviceId) ?? new Map<string, Stats>();
      for (const [name, stats] of hour.metrics) {
        const known = metrics.get(name);
        metrics.set(name, known ? mergeStats(known, stats) : stats);
      }
      merged.set(hour.deviceId, metrics);
    }
    const rollups: Rollup[] = [...merged].map(([deviceId, metrics]) => ({ deviceId, level: 'day', start: day, metrics }));
    await deps.rollups.replace(rollups, deps.clock());
    await deps.rollups.remove('day', [...devices].filter((d) => !merged.has(d)).map((deviceId) => ({ deviceId, hour: day })));
    count += devices.size;
  }
  return count;
}

function key(h: DeviceHour): string {
  return `${h.deviceId}|${h.hour}`;
}

/** Marked hours grouped into read windows of at most `MAX_WINDOW_MS`, each with the devices marked in it. */
export function windows(marks: readonly DeviceHour[]): { deviceIds: string[]; from: Date; to: Date }[] {
  const sorted = [...marks].sort((a, b) => a.hour - b.hour);
  const out: { deviceIds: string[]; from: Date; to: Date }[] = [];
  let start = 0;
  let devices = new Set<string>();
  let end = 0;
  for (const mark of sorted) {
    if (devices.size > 0 && mark.hour + HOUR_MS - start > MAX_WINDOW_MS) {
      out.push({ deviceIds: [...devices].sort(), from: new Date(start), to: new Date(end) });
      devices = new Set();
    }
    if (devices.size === 0) start = mark.hour;
    devices.add(mark.deviceId);
    end = mark.hour + HOUR_MS;
  }
  if (devices.size > 0) out.push({ deviceIds: [...devices].sort(), from: new Date(start), to: new Date(end) });
  return out;
}
