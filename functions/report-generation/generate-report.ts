import { randomUUID } from 'node:crypto';
import { DomainRefusalError } from '../../shared/errors.js';
import type { HandlerContext } from '../../shared/function-app.js';
import type { ActivitySource } from './activity-source.js';
import type { DeviceScopeReader } from './device-scope.js';
import { buildReport } from './report-model.js';
import type { ReportDocument, ReportRepository } from './report-repository.js';
import type { RollupRepository } from './rollup-repository.js';
import { INGEST_LATENESS_MS } from './run-rollups.js';
import type { ReportRequest } from './schema.js';
import { planSegments, readBucketStats } from './series-reader.js';
import type { TelemetrySource } from './telemetry-source.js';
import { alignRange, autoInterval, bucketCount, DAY_MS, INTERVAL_MS, type Interval } from './time.js';

export interface ReportDeps {
  devices: DeviceScopeReader;
  telemetry: TelemetrySource;
  rollups: RollupRepository;
  reports: ReportRepository;
  activity: ActivitySource;
  clock: () => Date;
  /** Brings rollups up to date (the rollup use case). */
  refreshRollups: () => Promise<unknown>;
  limits: { maxRows: number; maxDevices: number; rollupMaxAgeMs: number };
}

/** `raw` keeps every sample, so it is limited to short ranges. */
export const RAW_MAX_RANGE_MS = 7 * DAY_MS;

/** Generates a report, stores it under its id and returns its header (series are stored, not returned). */
export async function generateReport(
  input: ReportRequest & { id?: string; scheduleId?: string },
  deps: ReportDeps,
  ctx: HandlerContext,
): Promise<ReportDocument> {
  const ms: Record<string, number> = {};
  let mark = performance.now();
  const step = <T>(name: string, value: T): T => {
    const now = performance.now();
    ms[name] = Math.round(now - mark);
    mark = now;
    return value;
  };
  const deviceIds = step('scope', await resolveDevices(input, deps));
  const plan = planBuckets(input, deviceIds.length, deps.limits.maxRows);
  // Alerts and commands are other collections: read while the series are.
  const scope = 'fleet' in input.scope ? 'fleet' : deviceIds;
  const activity = Promise.all([
    deps.activity.alerts(scope, new Date(plan.from), new Date(plan.to)),
    deps.activity.commandsByStatus(scope, new Date(plan.from), new Date(plan.to)),
  ]);
  activity.catch(() => undefined); // awaited below; a failure of the series read must not leave it unhandled
  const fresh = step('freshness', await rollupFreshness(plan, deps));
  const { rows, segments } = step(
    'read',
    await readBucketStats(
      {
        deviceIds,
        metrics: input.metrics,
        from: plan.from,
        to: plan.to,
        width: plan.width,
        fresh,
        maxRows: deps.limits.maxRows,
      },
      deps,
    ),
  );
  const built = step(
    'build',
    buildReport(rows.values(), { deviceIds, metrics: input.metrics, from: plan.from, to: plan.to, width: plan.width }),
  );
  const [alerts, commandsByStatus] = step('activity', await activity);
  const report: ReportDocument = {
    _id: input.id ?? `r_${randomUUID().replaceAll('-', '')}`,
    ...(input.title ? { title: input.title } : {}),
    createdAt: deps.clock(),
    scope: input.scope,
    requested: { from: input.from, to: input.to },
    from: new Date(plan.from),
    to: new Date(plan.to),
    interval: plan.interval,
    bucketMs: plan.width,
    metrics: input.metrics,
    aggregations: input.aggregations,
    deviceIds,
    sources: [...new Set(segments.map((s) => s.source))],
    summary: {
      metrics: built.metrics,
      devices: deviceIds.length,
      devicesReporting: built.devicesReporting,
      onlineRatio: built.onlineRatio,
      alerts,
      commandsByStatus,
    },
    series: built.series.length,
    ...(input.scheduleId ? { scheduleId: input.scheduleId } : {}),
  };
  step('store', await deps.reports.save(report, built.series, { fresh: input.id === undefined }));
  ctx.logger.info(
    {
      report: {
        id: report._id,
        devices: deviceIds.length,
        rows: rows.size,
        interval: plan.interval,
        sources: report.sources,
        ms,
      },
    },
    'report generated',
  );
  return report;
}

/** Step 1: the devices in scope; a device asked for by id that the registry does not know is refused. */
async function resolveDevices(input: ReportRequest, deps: ReportDeps): Promise<string[]> {
  const resolved = await deps.devices.resolve(input.scope, deps.limits.maxDevices);
  if (resolved.unknown.length > 0) {
    throw new DomainRefusalError('unknown_device', `unknown device(s): ${resolved.unknown.slice(0, 20).join(', ')}`, {
      unknown: resolved.unknown,
    });
  }
  if (resolved.deviceIds.length > deps.limits.maxDevices) {
    throw new DomainRefusalError('scope_too_large', `a report covers at most ${deps.limits.maxDevices} devices`, {
      maxDevices: deps.limits.maxDevices,
    });
  }
  return resolved.deviceIds;
}

export interface BucketPlan {
  interval: Interval;
  /** Bucket width in ms; 1 for `raw`. */
  width: number;
  from: number;
  to: number;
}

/** Step 2: the interval (given or chosen), the range widened to whole buckets, and the size check. */
export function planBuckets(
  input: Pick<ReportRequest, 'from' | 'to' | 'interval' | 'metrics'>,
  devices: number,
  maxRows: number,
): BucketPlan {
  const range = { from: input.from, to: input.to };
  const interval = input.interval ?? autoInterval(range, devices);
  if (interval === 'raw') {
    if (input.to.getTime() - input.from.getTime() > RAW_MAX_RANGE_MS) {
      throw new DomainRefusalError(
        'range_too_long_for_raw',
        'the raw interval covers at most 7 days; pick 1m, 5m, 1h or 1d',
        { maxMs: RAW_MAX_RANGE_MS },
      );
    }
    return { interval, width: 1, from: input.from.getTime(), to: input.to.getTime() };
  }
  const width = INTERVAL_MS[interval];
  const aligned = alignRange(range, width);
  const rows = bucketCount(range, width) * Math.max(1, devices) * input.metrics.length;
  if (rows > maxRows) {
    throw new DomainRefusalError(
      'report_too_large',
      `${interval} buckets over this range and scope make ${rows} rows; the limit is ${maxRows}`,
      { rows, maxRows },
    );
  }
  return { interval, width, from: aligned.from.getTime(), to: aligned.to.getTime() };
}

/**
 * Step 3: up to where rollups may be trusted. When the plan reads rollups and the last run is older than
 * allowed, the rollups are brought up to date first (an indexed read of what arrived since, not a scan).
 */
async function rollupFreshness(plan: BucketPlan, deps: ReportDeps): Promise<number> {
  const needsRollups = planSegments(plan.from, plan.to, plan.width, plan.to).some((s) => s.source !== 'raw');
  if (!needsRollups) return plan.from;
  let watermark = (await deps.rollups.watermark())?.getTime() ?? 0;
  if (deps.clock().getTime() - watermark > deps.limits.rollupMaxAgeMs) {
    await deps.refreshRollups();
    watermark = (await deps.rollups.watermark())?.getTime() ?? 0;
  }
  return watermark - INGEST_LATENESS_MS;
}
