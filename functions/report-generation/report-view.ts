import type { ReportDocument, SeriesDocument, StoredPoint } from './report-repository.js';
import type { Aggregation } from './schema.js';

export type PointView = { t: string } & Partial<Record<Aggregation, number>>;

export interface SeriesView {
  deviceId?: string;
  metric: string;
  points: PointView[];
}

/** One aggregation of a stored point; `avg` is derived here, the same way for every format. */
export function aggregate(point: StoredPoint, aggregation: Aggregation): number {
  return aggregation === 'avg' ? point.sum / point.count : point[aggregation];
}

export function pointView(point: StoredPoint, aggregations: readonly Aggregation[]): PointView {
  const view: PointView = { t: point.t.toISOString() };
  for (const aggregation of aggregations) view[aggregation] = aggregate(point, aggregation);
  return view;
}

export interface Links {
  self: string;
  json: string;
  csv: string;
  html: string;
}

export function reportLinks(id: string, baseUrl = ''): Links {
  const self = `${baseUrl.replace(/\/$/, '')}/reports/${encodeURIComponent(id)}`;
  return { self, json: `${self}?format=json`, csv: `${self}?format=csv`, html: `${self}?format=html` };
}

/** The report header as apps see it (no series). */
export function headerView(report: ReportDocument, baseUrl?: string) {
  return {
    id: report._id,
    ...(report.title ? { title: report.title } : {}),
    createdAt: report.createdAt.toISOString(),
    scope: report.scope,
    requested: { from: report.requested.from.toISOString(), to: report.requested.to.toISOString() },
    from: report.from.toISOString(),
    to: report.to.toISOString(),
    interval: report.interval,
    metrics: report.metrics,
    aggregations: report.aggregations,
    devices: report.deviceIds,
    sources: report.sources,
    summary: report.summary,
    ...(report.scheduleId ? { scheduleId: report.scheduleId } : {}),
    links: reportLinks(report._id, baseUrl),
  };
}

/** The whole report as JSON: header, fleet series and per-device series (chunks joined). */
export async function jsonView(report: ReportDocument, chunks: AsyncIterable<SeriesDocument>, baseUrl?: string) {
  const fleet: SeriesView[] = [];
  const devices: SeriesView[] = [];
  let last: SeriesView | undefined;
  let lastKey = '';
  for await (const chunk of chunks) {
    const key = `${chunk.kind}|${chunk.deviceId ?? ''}|${chunk.metric}`;
    const points = chunk.points.map((p) => pointView(p, report.aggregations));
    if (last && key === lastKey) {
      last.points.push(...points);
      continue;
    }
    last =
      chunk.kind === 'fleet'
        ? { metric: chunk.metric, points }
        : { deviceId: chunk.deviceId!, metric: chunk.metric, points };
    lastKey = key;
    (chunk.kind === 'fleet' ? fleet : devices).push(last);
  }
  return { ...headerView(report, baseUrl), series: { fleet, devices } };
}
