import type { Collection } from 'mongodb';
import { ConflictError } from '../../shared/errors.js';
import { newestFirst } from '../../shared/keyset-cursor.js';
import type { MongoHandle } from '../../shared/mongo.js';
import { withMongo } from '../../shared/mongo.js';
import type { Aggregation, Scope } from './schema.js';
import { withMongoIterable } from './telemetry-source.js';
import type { Interval } from './time.js';

export const REPORTS_COLLECTION = 'reports';
export const SERIES_COLLECTION = 'report_series';

export interface MetricSummary {
  count: number;
  min: number | null;
  max: number | null;
  avg: number | null;
}

export interface ReportSummary {
  metrics: Record<string, MetricSummary>;
  devices: number;
  devicesReporting: number;
  /** Share of device × bucket slots (1-minute slots for `raw`) holding at least one sample. */
  onlineRatio: number;
  alerts: { raised: number; bySeverity: Record<string, number> };
  commandsByStatus: Record<string, number>;
}

/** A report's header (`reports`, `_id` = report id); its series live in `report_series`. */
export interface ReportDocument {
  _id: string;
  title?: string;
  createdAt: Date;
  scope: Scope;
  /** The range as asked, and as covered (widened to whole buckets). */
  requested: { from: Date; to: Date };
  from: Date;
  to: Date;
  interval: Interval;
  bucketMs: number;
  metrics: string[];
  aggregations: Aggregation[];
  deviceIds: string[];
  sources: string[];
  summary: ReportSummary;
  series: number;
  scheduleId?: string;
}

export interface StoredPoint {
  t: Date;
  count: number;
  sum: number;
  min: number;
  max: number;
  first: number;
  last: number;
}

/** One chunk of one series: the fleet's or a device's, of one metric, in bucket order. */
export interface SeriesDocument {
  _id: string;
  reportId: string;
  kind: 'fleet' | 'device';
  deviceId?: string;
  metric: string;
  points: StoredPoint[];
}

/** Points per stored chunk: keeps each document far below MongoDB's 16 MiB limit. */
export const POINTS_PER_CHUNK = 5_000;

/**
 * A chunk as stored: one array per field (columns), not an array of point objects. Plain number arrays
 * cost far less to encode and decode than thousands of small documents; the repository converts.
 */
interface StoredChunk extends Omit<SeriesDocument, 'points'> {
  columns: {
    t: number[];
    count: number[];
    sum: number[];
    min: number[];
    max: number[];
    first: number[];
    last: number[];
  };
}

const FIELDS = ['count', 'sum', 'min', 'max', 'first', 'last'] as const;

function toColumns(points: readonly StoredPoint[]): StoredChunk['columns'] {
  const columns: StoredChunk['columns'] = { t: [], count: [], sum: [], min: [], max: [], first: [], last: [] };
  for (const p of points) {
    columns.t.push(p.t.getTime());
    for (const field of FIELDS) columns[field].push(p[field]);
  }
  return columns;
}

function fromColumns(chunk: StoredChunk): SeriesDocument {
  const { columns, ...rest } = chunk;
  const points: StoredPoint[] = columns.t.map((t, i) => ({
    t: new Date(t),
    count: columns.count[i]!,
    sum: columns.sum[i]!,
    min: columns.min[i]!,
    max: columns.max[i]!,
    first: columns.first[i]!,
    last: columns.last[i]!,
  }));
  return { ...rest, points };
}

export interface ReportRepository {
  /**
   * Stores a report; storing the same id again (a retried schedule) replaces it. `fresh`: the id was just
   * generated, so there are no chunks of an earlier attempt to remove.
   */
  save(
    report: ReportDocument,
    series: Iterable<Omit<SeriesDocument, '_id' | 'reportId'>>,
    options?: { fresh?: boolean },
  ): Promise<void>;
  find(id: string): Promise<ReportDocument | null>;
  /** Report headers, newest first, after a keyset cursor; `next` when more follow. */
  list(page: { limit: number; cursor?: string }): Promise<{ items: ReportDocument[]; next: string | null }>;
  /** The series chunks in order, from a cursor: never the whole report at once. */
  series(id: string): AsyncIterable<SeriesDocument>;
}

export function createReportRepository(mongo: MongoHandle): ReportRepository {
  const reports = async (): Promise<Collection<ReportDocument>> =>
    (await mongo.db()).collection<ReportDocument>(REPORTS_COLLECTION);
  const chunks = async (): Promise<Collection<StoredChunk>> =>
    (await mongo.db()).collection<StoredChunk>(SERIES_COLLECTION);
  // `|` sorts before `}`: [id|, id}) is exactly this report's chunks, in `_id` order on the unique index.
  const chunkRange = (id: string) => ({ _id: { $gte: `${id}|`, $lt: `${id}}` } });

  return {
    save: async (report, series, options = {}) => {
      if (report._id.includes('|')) throw new ConflictError('report ids may not contain |');
      if (!options.fresh) await withMongo(async () => (await chunks()).deleteMany(chunkRange(report._id)));
      let seq = 0;
      let batch: StoredChunk[] = [];
      const flush = async () => {
        if (batch.length > 0) await withMongo(async () => (await chunks()).insertMany(batch, { ordered: true }));
        batch = [];
      };
      for (const { points: all, ...item } of series) {
        for (let offset = 0; offset === 0 || offset < all.length; offset += POINTS_PER_CHUNK) {
          const columns = toColumns(all.slice(offset, offset + POINTS_PER_CHUNK));
          batch.push({ ...item, columns, _id: `${report._id}|${String(seq).padStart(9, '0')}`, reportId: report._id });
          seq += 1;
        }
        if (batch.length >= 200) await flush();
      }
      await flush();
      // The header last: a report is visible only once all of its series are stored.
      await withMongo(async () => (await reports()).replaceOne({ _id: report._id }, report, { upsert: true }));
    },
    find: (id) => withMongo(async () => (await reports()).findOne({ _id: id })),
    list: (page) => newestFirst(reports, 'createdAt', page),
    async *series(id) {
      const cursor = (await withMongo(chunks)).find(chunkRange(id), { sort: { _id: 1 }, batchSize: 50 });
      for await (const chunk of withMongoIterable(cursor)) yield fromColumns(chunk);
    },
  };
}
