import type { z } from 'zod';
import { InvalidInputError, NotFoundError } from '../../shared/errors.js';
import type { HttpRequest, HttpResult, Route } from '../../shared/function-app.js';
import { CSV_MEDIA_TYPE, csvRows } from './csv.js';
import type { AppDeps } from './deps.js';
import { deviceSeries } from './device-series.js';
import { generateReport } from './generate-report.js';
import { renderReportHtml } from './html/render-report.js';
import { headerView, jsonView, reportLinks } from './report-view.js';
import { runRollups } from './run-rollups.js';
import { createSchedule } from './run-schedules.js';
import { deviceIdSchema } from '../../shared/devices.js';
import { reportQuerySchema, reportRequestSchema, rollupRunSchema, scheduleRequestSchema, seriesQuerySchema, type Format } from './schema.js';

function parse<S extends z.ZodType>(schema: S, value: unknown, what: string): z.infer<S> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw InvalidInputError.fromZod(parsed.error, `the ${what} is invalid`);
  return parsed.data;
}

const query = (request: HttpRequest) => Object.fromEntries(request.query.entries());

/** `?format=` wins; else the Accept header (RFC 9110 §12.5.1, media types only, no q-value ranking). */
export function negotiateFormat(request: HttpRequest): Format {
  const format = parse(reportQuerySchema, query(request), 'query').format;
  if (format) return format;
  const accept = (request.headers.accept ?? '').toLowerCase();
  if (accept.includes('text/csv')) return 'csv';
  if (accept.includes('text/html')) return 'html';
  return 'json';
}

/** The HTTP API of report-generation; scopes are enforced by the API-key authorizer. */
export function reportRoutes(deps: AppDeps): Route[] {
  return [
    {
      method: 'POST',
      path: '/rollups/run',
      scope: 'reports:write',
      handle: async (request, ctx) => {
        parse(rollupRunSchema, request.body ?? undefined, 'body');
        return { status: 200, body: await runRollups(undefined, deps, ctx) };
      },
    },
    {
      method: 'POST',
      path: '/reports',
      scope: 'reports:write',
      handle: async (request, ctx) => {
        const input = parse(reportRequestSchema, request.body, 'report request');
        const report = await generateReport(input, deps, ctx);
        const view = headerView(report, deps.baseUrl);
        return { status: 201, body: view, headers: { location: view.links.self } };
      },
    },
    {
      method: 'GET',
      path: '/reports/:id',
      scope: 'reports:read',
      handle: async (request): Promise<HttpResult> => {
        const format = negotiateFormat(request);
        const report = await deps.reports.find(request.params.id!);
        if (!report) throw new NotFoundError(`no report ${request.params.id}`, 'unknown_report');
        const chunks = deps.reports.series(report._id);
        if (format === 'csv') {
          const filename = `${report._id}.csv`;
          return { status: 200, body: csvRows(report, chunks), headers: { 'content-type': CSV_MEDIA_TYPE, 'content-disposition': `attachment; filename="${filename}"` } };
        }
        if (format === 'html') return { status: 200, body: await renderReportHtml(report, chunks), headers: { 'content-type': 'text/html; charset=utf-8' } };
        return { status: 200, body: await jsonView(report, chunks, deps.baseUrl) };
      },
    },
    {
      method: 'GET',
      path: '/devices/:id/series',
      scope: 'reports:read',
      handle: async (request) => {
        const deviceId = parse(deviceIdSchema, request.params.id, 'device id');
        const input = parse(seriesQuerySchema, query(request), 'query');
        return { status: 200, body: await deviceSeries({ deviceId, ...input }, deps) };
      },
    },
    {
      method: 'POST',
      path: '/report-schedules',
      scope: 'reports:write',
      handle: async (request) => {
        const schedule = await createSchedule(parse(scheduleRequestSchema, request.body, 'schedule'), deps);
        return { status: 201, body: scheduleView(schedule, deps.baseUrl), headers: { location: `/report-schedules/${schedule._id}` } };
      },
    },
    {
      method: 'GET',
      path: '/report-schedules/:id',
      scope: 'reports:read',
      handle: async (request) => {
        const schedule = await deps.schedules.find(request.params.id!);
        if (!schedule) throw new NotFoundError(`no schedule ${request.params.id}`, 'unknown_schedule');
        return { status: 200, body: scheduleView(schedule, deps.baseUrl) };
      },
    },
    {
      method: 'DELETE',
      path: '/report-schedules/:id',
      scope: 'reports:write',
      handle: async (request) => {
        if (!(await deps.schedules.remove(request.params.id!))) throw new NotFoundError(`no schedule ${request.params.id}`, 'unknown_schedule');
        return { status: 204 };
      },
    },
  ];
}

function scheduleView(schedule: Awaited<ReturnType<typeof createSchedule>>, baseUrl?: string) {
  const { _id, createdAt, nextRunAt, lastRunAt, lastReportId, ...rest } = schedule;
  return {
    id: _id,
    ...rest,
    createdAt: createdAt.toISOString(),
    nextRunAt: nextRunAt.toISOString(),
    ...(lastRunAt ? { lastRunAt: lastRunAt.toISOString() } : {}),
    ...(lastReportId ? { lastReportId, lastReport: reportLinks(lastReportId, baseUrl) } : {}),
  };
}
