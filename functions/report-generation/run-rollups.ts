import type { HandlerContext } from '../../shared/function-app.js';
import type { PendingWork } from '../../shared/pending-work.js';
import { TELEMETRY_COLLECTION } from '../../shared/telemetry.js';
import { HourAccumulator } from './accumulator.js';
import { MARKS_COLLECTION, type Mark, type Rollup, type RollupRepository } from './rollup-repository.js';
import { mergeStats, type Stats } from './stats.js';
import type { DeviceHour, TelemetrySource } from './telemetry-source.js';
import { DAY_MS, dayOf, HOUR_MS, hourOf } from './time.js';

export interface RollupDeps {
  telemetry: TelemetrySource;
  rollups: RollupRepository;
  clock: () => Date;
}

export interface RollupRunResult {
  hours: number;
  days: number;
  watermark: string;
  /** Time per step, for the log line and the caller. */
  ms: { mark: number; hours: number; days: number };
}

/**
 * How long a sample may take from its `receivedAt` stamp to being visible to a query (in-flight group
 * commits). Each run looks back this far past the previous watermark; recomputing is idempotent, so
 * overlap costs work, never correctness.
 */
export const INGEST_LATENESS_MS = 2 * 60_000;
/**
 * What the rollups tick has to do, as the tick gate checks it before the tick may wake report-generation
 * (knative/report-generation/ping-source-rollups.yaml carries it; a test compares): samples that arrived since
 * the last run looked (its watermark less the ingest lateness, so the run after the last sample still
 * comes), or marked hours a failed run left. No watermark yet: due.
 */
export const ROLLUPS_PENDING_WORK: PendingWork = [
  {
    collection: TELEMETRY_COLLECTION,
    since: {
      field: 'ingestedAt',
      mark: { collection: MARKS_COLLECTION, id: 'watermark', field: 'since' },
      lookbackSeconds: INGEST_LATENESS_MS / 1000,
    },
  },
  { collection: MARKS_COLLECTION, due: { field: 'markedAt' } },
];

/** Marks handled per pass: all the dirty hours of a busy interval at once, so each raw window is read once. */
const MARKS_PER_PASS = 200_000;
/**
 * Raw reads cover at most this much time and this many marked hours per query: late data from long ago does
 * not drag in months, and the sample times held to notice repeats stay bounded.
 */
const MAX_WINDOW_MS = 31 * DAY_MS;
const MAX_WINDOW_MARKS = 50_000;

/**
 * Incremental, idempotent rollups. Only hours that received samples since the last run are recomputed,
 * each from all of its raw samples (never `$inc`), and then the days they belong to from their hours.
 * Late data re-marks its hour, which re-opens its day.
 */
export async function runRollups(_input: unknown, deps: RollupDeps, ctx: HandlerContext): Promise<RollupRunResult> {
  const runStart = deps.clock();
  const ms = { mark: 0, hours: 0, days: 0 };
  const timed = async <T>(step: keyof typeof ms, work: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    try {
      return await work();
    } finally {
      ms[step] += Math.round(performance.now() - started);
    }
  };
  await timed('mark', () => markChangedHours(deps, runStart));
  let hours = 0;
  let days = 0;
  for (;;) {
    const marks = await timed('mark', () => deps.rollups.pendingMarks(runStart, MARKS_PER_PASS));
    if (marks.length === 0) break;
    hours += await timed('hours', () => recomputeHours(marks, deps));
    days += await timed('days', () => recomputeDays(marks, deps));
    await timed('mark', () => deps.rollups.clearMarks(marks));
  }
  ctx.logger.info({ rollups: { hours, days, ms } }, 'rollups run');
  return { hours, days, watermark: runStart.toISOString(), ms };
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
    const acc = new HourAccumulator(HOUR_MS);
    for await (const sample of deps.telemetry.scan(window)) {
      if (wanted.has(`${sample.deviceId}|${hourOf(sample.ts.getTime())}`)) acc.add(sample);
    }
    const conflicts = acc.conflicts();
    if (conflicts.length > 0) acc.resolve(await deps.telemetry.hours(conflicts));
    const byHour = new Map<string, Rollup>();
    for (const cell of acc.cells()) {
      const id = key(cell);
      let rollup = byHour.get(id);
      if (!rollup) {
        rollup = { deviceId: cell.deviceId, level: 'hour', start: cell.hour, metrics: new Map() };
        byHour.set(id, rollup);
        seen.add(id);
      }
      rollup.metrics.set(cell.metric, cell.stats);
    }
    const rollups = [...byHour.values()];
    for (let offset = 0; offset < rollups.length; offset += 1_000)
      await deps.rollups.replace(rollups.slice(offset, offset + 1_000), deps.clock());
  }
  await deps.rollups.remove(
    'hour',
    marks.filter((m) => !seen.has(key(m))),
  );
  return wanted.size;
}

/** Step 3: each day that holds a marked hour recomputed as the merge of its (up to 24) hourly rollups. */
async function recomputeDays(marks: Mark[], deps: RollupDeps): Promise<number> {
  const wanted = new Map<string, { deviceId: string; day: number }>();
  for (const m of marks) wanted.set(`${m.deviceId}|${dayOf(m.hour)}`, { deviceId: m.deviceId, day: dayOf(m.hour) });
  const devices = [...new Set(marks.map((m) => m.deviceId))];
  const days = [...wanted.values()].map((w) => w.day);
  // One read of the hourly rollups spanning the marked days; hours of unmarked device-days are skipped.
  const hourly = await deps.rollups.find('hour', devices, Math.min(...days), Math.max(...days) + DAY_MS);
  const merged = new Map<string, Rollup>();
  for (const hour of hourly) {
    const id = `${hour.deviceId}|${dayOf(hour.start)}`;
    if (!wanted.has(id)) continue;
    const day = merged.get(id) ?? {
      deviceId: hour.deviceId,
      level: 'day' as const,
      start: dayOf(hour.start),
      metrics: new Map<string, Stats>(),
    };
    for (const [name, stats] of hour.metrics) {
      const known = day.metrics.get(name);
      day.metrics.set(name, known ? mergeStats(known, stats) : stats);
    }
    merged.set(id, day);
  }
  const rollups = [...merged.values()];
  for (let offset = 0; offset < rollups.length; offset += 1_000)
    await deps.rollups.replace(rollups.slice(offset, offset + 1_000), deps.clock());
  await deps.rollups.remove(
    'day',
    [...wanted].filter(([id]) => !merged.has(id)).map(([, w]) => ({ deviceId: w.deviceId, hour: w.day })),
  );
  return wanted.size;
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
  let count = 0;
  for (const mark of sorted) {
    if (
      devices.size > 0 &&
      (mark.hour + HOUR_MS - start > MAX_WINDOW_MS || (count >= MAX_WINDOW_MARKS && mark.hour >= end))
    ) {
      out.push({ deviceIds: [...devices].sort(), from: new Date(start), to: new Date(end) });
      devices = new Set();
      count = 0;
    }
    if (devices.size === 0) start = mark.hour;
    devices.add(mark.deviceId);
    end = mark.hour + HOUR_MS;
    count += 1;
  }
  if (devices.size > 0) out.push({ deviceIds: [...devices].sort(), from: new Date(start), to: new Date(end) });
  return out;
}
