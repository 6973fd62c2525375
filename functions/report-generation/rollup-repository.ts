import type { AnyBulkWriteOperation, Collection, Filter } from 'mongodb';
import type { MongoHandle } from '../../shared/mongo.js';
import { withMongo } from '../../shared/mongo.js';
import type { Stats } from './stats.js';
import type { DeviceHour } from './telemetry-source.js';
import { DAY_MS, HOUR_MS } from './time.js';

export const ROLLUPS_COLLECTION = 'rollups';
export const MARKS_COLLECTION = 'rollup_marks';

export type Level = 'hour' | 'day';
export const LEVEL_MS: Record<Level, number> = { hour: HOUR_MS, day: DAY_MS };

interface StoredStats extends Omit<Stats, 'firstTs' | 'lastTs'> {
  avg: number;
  firstTs: Date;
  lastTs: Date;
}

/** One device's statistics of every metric over one hour or day (`rollups`, `_id` = `rollupId`). */
interface RollupDocument {
  _id: string;
  deviceId: string;
  level: Level;
  start: Date;
  metrics: Record<string, StoredStats>;
  computedAt: Date;
}

export interface Rollup {
  deviceId: string;
  level: Level;
  start: number;
  metrics: Map<string, Stats>;
}

/** Deterministic ids: an upsert by `_id` replaces the one rollup of a device and period, never adds a second. */
export function rollupId(level: Level, deviceId: string, start: number): string {
  return `${level === 'hour' ? 'h' : 'd'}|${deviceId}|${new Date(start).toISOString()}`;
}

interface MarkDocument {
  _id: string;
  deviceId?: string;
  hour?: Date;
  markedAt?: Date;
  /** Only on the watermark document. */
  since?: Date;
}

export interface Mark extends DeviceHour {
  id: string;
  markedAt: Date;
}

export interface RollupRepository {
  replace(rollups: Rollup[], computedAt: Date): Promise<void>;
  remove(level: Level, keys: DeviceHour[]): Promise<void>;
  /** The rollups of `deviceIds` at `level` with start in [from, to). */
  find(level: Level, deviceIds: readonly string[], from: number, to: number): Promise<Rollup[]>;
  watermark(): Promise<Date | undefined>;
  setWatermark(at: Date): Promise<void>;
  mark(hours: DeviceHour[], at: Date): Promise<void>;
  /** Marks made at or before `at`, at most `limit`. */
  pendingMarks(at: Date, limit: number): Promise<Mark[]>;
  /** Clears marks unless they were made again since they were read. */
  clearMarks(marks: Mark[]): Promise<void>;
  ensureIndexes(): Promise<void>;
}

/**
 * Up to this many devices a lookup filters by device (the unique `{level, deviceId, start}` index); beyond
 * it, by period alone (the `{level, start}` index) and the devices here: a long `$in` list costs per document
 * on servers that scan.
 */
const MAX_DEVICES_PER_FILTER = 8;
const MAX_IDS_PER_LOOKUP = 100;

function toDocument(rollup: Rollup, computedAt: Date): RollupDocument {
  const metrics: Record<string, StoredStats> = {};
  for (const [name, s] of rollup.metrics) {
    metrics[name] = { ...s, avg: s.sum / s.count, firstTs: new Date(s.firstTs), lastTs: new Date(s.lastTs) };
  }
  return {
    _id: rollupId(rollup.level, rollup.deviceId, rollup.start),
    deviceId: rollup.deviceId,
    level: rollup.level,
    start: new Date(rollup.start),
    metrics,
    computedAt,
  };
}

function fromDocument(doc: RollupDocument): Rollup {
  const metrics = new Map<string, Stats>();
  for (const [name, s] of Object.entries(doc.metrics ?? {})) {
    metrics.set(name, {
      count: s.count,
      sum: s.sum,
      min: s.min,
      max: s.max,
      first: s.first,
      firstTs: s.firstTs.getTime(),
      last: s.last,
      lastTs: s.lastTs.getTime(),
    });
  }
  return { deviceId: doc.deviceId, level: doc.level, start: doc.start.getTime(), metrics };
}

export function createRollupRepository(mongo: MongoHandle): RollupRepository {
  const rollups = async (): Promise<Collection<RollupDocument>> =>
    (await mongo.db()).collection<RollupDocument>(ROLLUPS_COLLECTION);
  const marks = async (): Promise<Collection<MarkDocument>> =>
    (await mongo.db()).collection<MarkDocument>(MARKS_COLLECTION);

  return {
    replace: (items, computedAt) =>
      withMongo(async () => {
        if (items.length === 0) return;
        // A whole recomputed period replaces what was there: re-running never adds twice.
        const ops: AnyBulkWriteOperation<RollupDocument>[] = items.map((rollup) => {
          const doc = toDocument(rollup, computedAt);
          return { replaceOne: { filter: { _id: doc._id }, replacement: doc, upsert: true } };
        });
        await (await rollups()).bulkWrite(ops, { ordered: false });
      }),

    remove: (level, keys) =>
      withMongo(async () => {
        if (keys.length === 0) return;
        await (await rollups()).deleteMany({ _id: { $in: keys.map((k) => rollupId(level, k.deviceId, k.hour)) } });
      }),

    find: (level, deviceIds, from, to) =>
      withMongo(async () => {
        const out: Rollup[] = [];
        if (deviceIds.length === 0 || to <= from) return out;
        const width = LEVEL_MS[level];
        const periods = Math.ceil((to - from) / width);
        if (periods * deviceIds.length <= MAX_IDS_PER_LOOKUP) {
          // A few rollups: point lookups on the unique `_id` index, which every target server builds and uses
          // (many ids cost more than a filtered scan on a server that looks each one up on its own).
          const ids: string[] = [];
          for (const deviceId of deviceIds)
            for (let i = 0; i < periods; i += 1) ids.push(rollupId(level, deviceId, from + i * width));
          for (const doc of await (await rollups()).find({ _id: { $in: ids } }).toArray()) out.push(fromDocument(doc));
          return out;
        }
        const byDevice = deviceIds.length <= MAX_DEVICES_PER_FILTER;
        const filter: Filter<RollupDocument> = { level, start: { $gte: new Date(from), $lt: new Date(to) } };
        if (byDevice) filter.deviceId = deviceIds.length === 1 ? deviceIds[0]! : { $in: [...deviceIds] };
        const wanted = new Set(deviceIds);
        for await (const doc of (await rollups()).find(filter, { batchSize: 10_000 })) {
          if (byDevice || wanted.has(doc.deviceId)) out.push(fromDocument(doc));
        }
        return out;
      }),

    watermark: () => withMongo(async () => (await (await marks()).findOne({ _id: 'watermark' }))?.since),

    setWatermark: (at) =>
      withMongo(async () => {
        // $max: a slow run that finishes after a faster, later one never moves the watermark back.
        await (await marks()).updateOne({ _id: 'watermark' }, { $max: { since: at } }, { upsert: true });
      }),

    mark: (hours, at) =>
      withMongo(async () => {
        if (hours.length === 0) return;
        const ops: AnyBulkWriteOperation<MarkDocument>[] = hours.map((h) => ({
          updateOne: {
            filter: { _id: rollupId('hour', h.deviceId, h.hour) },
            update: { $set: { deviceId: h.deviceId, hour: new Date(h.hour), markedAt: at } },
            upsert: true,
          },
        }));
        for (let offset = 0; offset < ops.length; offset += 5_000) {
          await (await marks()).bulkWrite(ops.slice(offset, offset + 5_000), { ordered: false });
        }
      }),

    pendingMarks: (at, limit) =>
      withMongo(async () => {
        const docs = await (await marks()).find({ markedAt: { $lte: at } }, { limit }).toArray();
        return docs.map((doc) => ({
          id: doc._id,
          deviceId: doc.deviceId!,
          hour: doc.hour!.getTime(),
          markedAt: doc.markedAt!,
        }));
      }),

    clearMarks: (items) =>
      withMongo(async () => {
        // Grouped by the time they were marked (a pass has few distinct ones): `_id $in` uses the index, and a
        // mark made again since it was read has a newer `markedAt` and stays.
        const byTime = new Map<number, string[]>();
        for (const m of items) byTime.set(m.markedAt.getTime(), [...(byTime.get(m.markedAt.getTime()) ?? []), m.id]);
        for (const [at, ids] of byTime) {
          for (let offset = 0; offset < ids.length; offset += 1_000) {
            await (await marks()).deleteMany({
              _id: { $in: ids.slice(offset, offset + 1_000) },
              markedAt: new Date(at),
            });
          }
        }
      }),

    ensureIndexes: () =>
      withMongo(async () => {
        await (await rollups()).createIndex(
          { level: 1, deviceId: 1, start: 1 },
          { name: 'level_device_start', unique: true },
        );
        await (await rollups()).createIndex({ level: 1, start: 1 }, { name: 'level_start' });
        await (await marks()).createIndex({ markedAt: 1 }, { name: 'markedAt' });
      }),
  };
}
