import type { Collection, Document, Filter } from 'mongodb';
import type { MongoHandle } from '../../shared/mongo.js';
import { withMongo } from '../../shared/mongo.js';
import type { Sample } from './stats.js';
import { HOUR_MS } from './time.js';

/** One device's stored samples of one hour, possibly with repeats, sorted by sample time. */
export interface DeviceHourSamples {
  deviceId: string;
  /** Start of the hour, epoch ms (UTC). */
  hour: number;
  samples: Sample[];
}

export interface DeviceHour {
  deviceId: string;
  hour: number;
}

/**
 * The port through which report-generation reads raw telemetry. telemetry-ingest owns the store and its
 * format; only the adapter below knows it, so a change of format (raw documents or hour buckets) stays
 * in this file.
 */
export interface TelemetrySource {
  /** Samples of `deviceIds` with sample time in [from, to), grouped per device and hour. */
  read(query: { deviceIds: readonly string[]; from: Date; to: Date }): AsyncIterable<DeviceHourSamples>;
  /** The device-hours that received samples stored at or after `since` (ingestion time). */
  changedSince(since: Date): Promise<DeviceHour[]>;
  ensureIndexes(): Promise<void>;
}

export const TELEMETRY_COLLECTION = 'telemetry';

/**
 * telemetry-ingest's documents (functions/telemetry-ingest/telemetry-repository.ts, `SampleDocument`):
 * one raw sample per document, `_id` unique per stored message, `receivedAt` = ingestion time.
 * Only the fields read here are declared.
 */
interface StoredSample {
  _id: string;
  deviceId: string;
  ts: Date;
  metrics: Record<string, number>;
  receivedAt: Date;
}

/** Device ids per query: keeps `$in` lists and cursors bounded. */
const DEVICES_PER_QUERY = 500;

export function createMongoTelemetrySource(mongo: MongoHandle): TelemetrySource {
  const collection = async (): Promise<Collection<StoredSample>> => (await mongo.db()).collection<StoredSample>(TELEMETRY_COLLECTION);

  return {
    async *read({ deviceIds, from, to }) {
      for (let offset = 0; offset < deviceIds.length; offset += DEVICES_PER_QUERY) {
        const batch = deviceIds.slice(offset, offset + DEVICES_PER_QUERY);
        const filter: Filter<StoredSample> = {
          deviceId: batch.length === 1 ? batch[0]! : { $in: [...batch] },
          ts: { $gte: from, $lt: to },
        };
        // Sorted as telemetry-ingest's `device_ts` index ({deviceId, ts, _id}) is, so MongoDB walks the index
        // and one device-hour at a time is held here.
        const cursor = (await withMongo(collection)).find(filter, {
          projection: { deviceId: 1, ts: 1, metrics: 1 },
          sort: { deviceId: 1, ts: 1, _id: 1 },
          batchSize: 5_000,
        });
        let current: DeviceHourSamples | undefined;
        for await (const doc of withMongoIterable(cursor)) {
          const hour = Math.floor(doc.ts.getTime() / HOUR_MS) * HOUR_MS;
          if (!current || current.deviceId !== doc.deviceId || current.hour !== hour) {
            if (current) yield current;
            current = { deviceId: doc.deviceId, hour, samples: [] };
          }
          current.samples.push({ ts: doc.ts, metrics: doc.metrics ?? {} });
        }
        if (current) yield current;
      }
    },

    changedSince: (since) =>
      withMongo(async () => {
        // $toLong/$mod/$subtract: the date arithmetic every target server shares (no $dateTrunc).
        const hourOf = { $subtract: [{ $toLong: '$ts' }, { $mod: [{ $toLong: '$ts' }, HOUR_MS] }] };
        const pipeline: Document[] = [
          { $match: { receivedAt: { $gte: since } } },
          { $group: { _id: { d: '$deviceId', h: hourOf } } },
        ];
        const rows = await (await collection()).aggregate<{ _id: { d: string; h: number } }>(pipeline).toArray();
        return rows.map((row) => ({ deviceId: row._id.d, hour: Number(row._id.h) }));
      }),

    ensureIndexes: () =>
      withMongo(async () => {
        // Finding what arrived since the last rollup run must not scan all raw samples.
        await (await collection()).createIndex({ receivedAt: 1 }, { name: 'receivedAt_rollups' });
      }),
  };
}

/** Iterates a cursor, mapping "the server went away" to a 503 like `withMongo`. */
export async function* withMongoIterable<T>(iterable: AsyncIterable<T>): AsyncIterable<T> {
  const iterator = iterable[Symbol.asyncIterator]();
  try {
    while (true) {
      const next = await withMongo(() => iterator.next());
      if (next.done) return;
      yield next.value;
    }
  } finally {
    // A consumer that stops early (a failed report) closes the server-side cursor.
    await iterator.return?.();
  }
}
