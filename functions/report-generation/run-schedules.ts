import { randomUUID } from 'node:crypto';
import type { Emitter } from '../../shared/emitter.js';
import { AppError, toProblem } from '../../shared/errors.js';
import type { HandlerContext } from '../../shared/function-app.js';
import type { PendingWork } from '../../shared/pending-work.js';
import { generateReport, type ReportDeps } from './generate-report.js';
import { reportLinks } from './report-view.js';
import { SCHEDULES_COLLECTION, type ScheduleDocument, type ScheduleRepository } from './schedule-repository.js';
import { EVENT_TYPES, type ScheduleRequest } from './schema.js';
import { ceilTo, DAY_MS } from './time.js';

export interface ScheduleDeps extends ReportDeps {
  schedules: ScheduleRepository;
  emitter: Emitter;
  baseUrl?: string;
}

/**
 * What the reports tick has to do, as the tick gate checks it before the tick may wake report-generation
 * (knative/report-generation/ping-source-reports.yaml carries it; a test compares): a schedule whose period
 * ended. With no schedule the tick never wakes it; with daily ones, once a day just after 00:00 UTC.
 */
export const REPORTS_PENDING_WORK: PendingWork = [{ collection: SCHEDULES_COLLECTION, due: { field: 'nextRunAt' } }];

const PERIOD_MS = { daily: DAY_MS, weekly: 7 * DAY_MS } as const;
/** 1970-01-01 was a Thursday: weeks in kiot start on Monday 00:00 UTC (ISO 8601 weeks). */
const MONDAY_OFFSET_MS = 4 * DAY_MS;

/** The first period end after `at`: the next UTC midnight, or the next Monday 00:00 UTC. */
export function nextPeriodEnd(cadence: ScheduleRequest['cadence'], at: number): number {
  if (cadence === 'daily') return ceilTo(at + 1, DAY_MS);
  return ceilTo(at + 1 - MONDAY_OFFSET_MS, 7 * DAY_MS) + MONDAY_OFFSET_MS;
}

export async function createSchedule(
  input: ScheduleRequest,
  deps: Pick<ScheduleDeps, 'schedules' | 'clock'>,
): Promise<ScheduleDocument> {
  const now = deps.clock();
  const doc: ScheduleDocument = {
    ...input,
    _id: `sch_${randomUUID().replaceAll('-', '')}`,
    createdAt: now,
    nextRunAt: new Date(nextPeriodEnd(input.cadence, now.getTime())),
  };
  await deps.schedules.insert(doc);
  return doc;
}

/** Catch-up bound: a schedule missed for longer reports its last few periods, not every one. */
const MAX_PERIODS_PER_TICK = 7;

/**
 * The `reports` ping: every due schedule reports on the period that just ended, then emits
 * `io.kiot.report.generated`. The report id and event id derive from schedule and period, so a retried
 * tick (or two instances at once) stores the same report again and emits an event consumers drop as a
 * duplicate. The schedule moves on only after both, and only from the period it started from.
 */
export async function runDueSchedules(
  _input: unknown,
  deps: ScheduleDeps,
  ctx: HandlerContext,
): Promise<{ generated: string[] }> {
  const generated: string[] = [];
  for (const schedule of await deps.schedules.due(deps.clock(), 100)) {
    let due = schedule.nextRunAt.getTime();
    for (let i = 0; i < MAX_PERIODS_PER_TICK && due <= deps.clock().getTime(); i += 1) {
      const next = nextPeriodEnd(schedule.cadence, due);
      const outcome = await reportPeriod(schedule, due, deps, ctx);
      if (outcome.reportId) generated.push(outcome.reportId);
      const moved = await deps.schedules.advance(schedule._id, new Date(due), {
        nextRunAt: new Date(next),
        lastRunAt: deps.clock(),
        ...(outcome.reportId ? { lastReportId: outcome.reportId } : {}),
        ...(outcome.error ? { lastError: outcome.error } : {}),
      });
      if (!moved) break;
      due = next;
    }
  }
  return { generated };
}

async function reportPeriod(
  schedule: ScheduleDocument,
  end: number,
  deps: ScheduleDeps,
  ctx: HandlerContext,
): Promise<{ reportId?: string; error?: { code: string; message: string } }> {
  const from = new Date(end - PERIOD_MS[schedule.cadence]);
  const id = `s_${schedule._id}_${new Date(end).toISOString().slice(0, 10).replaceAll('-', '')}`;
  try {
    await generateReport(
      {
        id,
        scheduleId: schedule._id,
        scope: schedule.scope,
        from,
        to: new Date(end),
        metrics: schedule.metrics,
        interval: schedule.interval,
        aggregations: schedule.aggregations,
        title: schedule.name ?? `${schedule.cadence} report`,
      },
      deps,
      ctx,
    );
  } catch (error) {
    // A report that can never succeed (its devices are gone, it is too large) is recorded and skipped;
    // anything transient fails the tick so that the PingSource delivery is retried.
    if (error instanceof AppError && !error.retryable) {
      ctx.logger.warn({ schedule: schedule._id, error: toProblem(error).body.error }, 'scheduled report refused');
      return { error: { code: error.code, message: error.message } };
    }
    throw error;
  }
  const links = reportLinks(id, deps.baseUrl);
  await deps.emitter.emit({
    id: `${id}.generated`,
    type: EVENT_TYPES.generated,
    subject: schedule._id,
    data: {
      reportId: id,
      scheduleId: schedule._id,
      name: schedule.name,
      cadence: schedule.cadence,
      format: schedule.format,
      from: from.toISOString(),
      to: new Date(end).toISOString(),
      links: { ...links, preferred: links[schedule.format] },
    },
  });
  return { reportId: id };
}
