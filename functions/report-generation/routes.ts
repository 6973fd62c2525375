import { z } from 'zod';
import { deviceIdSchema } from '../../shared/devices.js';
import { NotFoundError, parseInput as parse } from '../../shared/errors.js';
import type { HttpRequest, HttpResult } from '../../shared/function-app.js';
import { queryObject } from '../../shared/http-io.js';
import { type ApiOperation, appProblems, operation, problem } from '../../shared/openapi.js';
import { CSV_MEDIA_TYPE, csvRows } from './csv.js';
import type { AppDeps } from './deps.js';
import { deviceSeries } from './device-series.js';
import { generateReport } from './generate-report.js';
import { renderJobOutcomeHtml } from './html/render-job-outcome.js';
import { renderReportHtml } from './html/render-report.js';
import { jobOutcome } from './job-outcome.js';
import { headerView, jsonView, reportLinks } from './report-view.js';
import { runRollups } from './run-rollups.js';
import { createSchedule } from './run-schedules.js';
import {
  type Format,
  reportIdSchema,
  reportQuerySchema,
  reportRequestSchema,
  rollupRunSchema,
  scheduleIdSchema,
  scheduleRequestSchema,
  seriesQuerySchema,
} from './schema.js';

const query = (request: HttpRequest) => queryObject(request.query);
/** `?limit&cursor` of the listings: newest first. */
const pageQuerySchema = z
  .object({ limit: z.coerce.number().int().min(1).max(200).default(50), cursor: z.string().max(512).optional() })
  .strict();
const jobIdParam = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'a job id');

/** `?format=` wins; else the Accept header (RFC 9110 §12.5.1, media types only, no q-value ranking). */
export function negotiateFormat(request: HttpRequest): Format {
  const format = parse(reportQuerySchema, query(request), 'query').format;
  if (format) return format;
  const accept = (request.headers.accept ?? '').toLowerCase();
  if (accept.includes('text/csv')) return 'csv';
  if (accept.includes('text/html')) return 'html';
  return 'json';
}

const common = appProblems;

/** The HTTP API of report-generation, with the contract its OpenAPI document is generated from. */
export function reportRoutes(deps: AppDeps): ApiOperation[] {
  return [
    operation({
      method: 'POST',
      path: '/rollups/run',
      scope: 'reports:write',
      summary: 'Bring the minute/hour/day rollups up to date now (the PingSource does it on a schedule)',
      body: rollupRunSchema,
      bodyOptional: true,
      responses: {
        200: { description: 'what each rollup level did' },
        ...common,
        503: problem('a store is unavailable'),
      },
      handle: async (request, ctx) => {
        parse(rollupRunSchema, request.body, 'body');
        return { status: 200, body: await runRollups(undefined, deps, ctx) };
      },
    }),
    operation({
      method: 'POST',
      path: '/reports',
      scope: 'reports:write',
      summary: 'Generate a report over devices or the fleet, from rollups (or raw samples for short ranges)',
      body: reportRequestSchema,
      rules: ['from before to; at most REPORT_MAX_ROWS rows and REPORT_MAX_DEVICES devices (400/422)'],
      responses: {
        201: { description: 'generated; links to its JSON, CSV and HTML', headers: { location: 'the report' } },
        ...common,
        422: problem('a device of the scope is unknown, or the report would be larger than the limits'),
        503: problem('a store is unavailable'),
      },
      handle: async (request, ctx) => {
        const input = parse(reportRequestSchema, request.body, 'report request');
        const report = await generateReport(input, deps, ctx);
        const view = headerView(report, deps.baseUrl);
        return { status: 201, body: view, headers: { location: view.links.self } };
      },
    }),
    operation({
      method: 'GET',
      path: '/reports',
      scope: 'reports:read',
      summary: 'Reports, newest first (headers with links to JSON, CSV and HTML); cursor pagination',
      query: pageQuerySchema,
      responses: { 200: { description: 'a page of report headers' }, ...common },
      handle: async (request) => {
        const page = await deps.reports.list(parse(pageQuerySchema, query(request), 'query'));
        return {
          status: 200,
          body: { items: page.items.map((report) => headerView(report, deps.baseUrl)), nextCursor: page.next },
        };
      },
    }),
    operation({
      method: 'GET',
      path: '/reports/:id',
      params: { id: reportIdSchema },
      scope: 'reports:read',
      summary: 'A report as JSON, CSV (streamed) or a self-contained HTML page: ?format= or the Accept header',
      query: reportQuerySchema,
      responses: {
        200: { description: 'the report in the negotiated format' },
        ...common,
        404: problem('unknown report'),
      },
      handle: async (request): Promise<HttpResult> => {
        const format = negotiateFormat(request);
        const report = await deps.reports.find(request.params.id!);
        if (!report) throw new NotFoundError(`no report ${request.params.id}`, 'unknown_report');
        const chunks = deps.reports.series(report._id);
        if (format === 'csv') {
          const filename = `${report._id}.csv`;
          return {
            status: 200,
            body: csvRows(report, chunks),
            headers: { 'content-type': CSV_MEDIA_TYPE, 'content-disposition': `attachment; filename="${filename}"` },
          };
        }
        if (format === 'html')
          return {
            status: 200,
            body: await renderReportHtml(report, chunks),
            headers: { 'content-type': 'text/html; charset=utf-8' },
          };
        return { status: 200, body: await jsonView(report, chunks, deps.baseUrl) };
      },
    }),
    operation({
      method: 'GET',
      path: '/jobs/:jobId/outcome',
      params: { jobId: jobIdParam },
      scope: 'reports:read',
      summary:
        "A job's outcome: executions by status, failures by reason, completions per minute, timeline (JSON or HTML)",
      query: reportQuerySchema,
      responses: {
        200: { description: 'the outcome in the negotiated format' },
        ...common,
        404: problem('unknown job'),
      },
      handle: async (request): Promise<HttpResult> => {
        const jobId = parse(jobIdParam, request.params.jobId, 'job id');
        const outcome = await jobOutcome(deps.mongo, jobId);
        if (negotiateFormat(request) === 'html')
          return {
            status: 200,
            body: renderJobOutcomeHtml(outcome),
            headers: { 'content-type': 'text/html; charset=utf-8' },
          };
        return { status: 200, body: outcome };
      },
    }),
    operation({
      method: 'GET',
      path: '/devices/:id/series',
      params: { id: deviceIdSchema },
      scope: 'reports:read',
      summary: "A device's metric series at an interval chosen from the range (or given), from the rollups",
      query: seriesQuerySchema,
      rules: ['from before to (400)'],
      responses: { 200: { description: 'the series' }, ...common, 404: problem('unknown device') },
      handle: async (request) => {
        const deviceId = parse(deviceIdSchema, request.params.id, 'device id');
        const input = parse(seriesQuerySchema, query(request), 'query');
        return { status: 200, body: await deviceSeries({ deviceId, ...input }, deps) };
      },
    }),
    operation({
      method: 'POST',
      path: '/report-schedules',
      scope: 'reports:write',
      summary: 'Schedule a report to be generated every period (a PingSource tick runs what is due)',
      body: scheduleRequestSchema,
      responses: { 201: { description: 'scheduled', headers: { location: 'the schedule' } }, ...common },
      handle: async (request) => {
        const schedule = await createSchedule(parse(scheduleRequestSchema, request.body, 'schedule'), deps);
        return {
          status: 201,
          body: scheduleView(schedule, deps.baseUrl),
          headers: { location: `/report-schedules/${schedule._id}` },
        };
      },
    }),
    operation({
      method: 'GET',
      path: '/report-schedules',
      scope: 'reports:read',
      summary: 'Report schedules, newest first; cursor pagination',
      query: pageQuerySchema,
      responses: { 200: { description: 'a page of schedules' }, ...common },
      handle: async (request) => {
        const page = await deps.schedules.list(parse(pageQuerySchema, query(request), 'query'));
        return {
          status: 200,
          body: { items: page.items.map((schedule) => scheduleView(schedule, deps.baseUrl)), nextCursor: page.next },
        };
      },
    }),
    operation({
      method: 'GET',
      path: '/report-schedules/:id',
      params: { id: scheduleIdSchema },
      scope: 'reports:read',
      summary: 'A report schedule, with a link to the last report it made',
      responses: { 200: { description: 'the schedule' }, ...common, 404: problem('unknown schedule') },
      handle: async (request) => {
        const schedule = await deps.schedules.find(request.params.id!);
        if (!schedule) throw new NotFoundError(`no schedule ${request.params.id}`, 'unknown_schedule');
        return { status: 200, body: scheduleView(schedule, deps.baseUrl) };
      },
    }),
    operation({
      method: 'DELETE',
      path: '/report-schedules/:id',
      params: { id: scheduleIdSchema },
      scope: 'reports:write',
      summary: 'Delete a report schedule',
      responses: { 204: { description: 'deleted' }, ...common, 404: problem('unknown schedule') },
      handle: async (request) => {
        if (!(await deps.schedules.remove(request.params.id!)))
          throw new NotFoundError(`no schedule ${request.params.id}`, 'unknown_schedule');
        return { status: 204 };
      },
    }),
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
