import type { Collection, Filter } from 'mongodb';
import type { MongoHandle } from '../../shared/mongo.js';
import { withMongo } from '../../shared/mongo.js';
import { TELEMETRY_COLLECTION, type TelemetrySampleDocument } from '../../shared/telemetry.js';
import { floorTo, HOUR_MS } from './time.js';

/** One stored sample as read here; `id` orders repeats of one sample time (the greater wins). */
export interface RawSample {
  id: string;
  deviceId: string;
  ts: Date;
  metrics: Record<string, number>;
}

export interface DeviceHour {
  deviceId: string;
  /** Start of the hour, epoch ms (UTC). */
  hour: number;
}

/**
 * The port through which report-generation reads raw telemetry. telemetry-ingest owns the store and its
 * format; only the adapter below knows it, so a change of format (raw documents or hour buckets) stays
 * in this file.
 */
export interface TelemetrySource {
  /** Samples of `deviceIds` with sample time in [from, to), in no particular order. */
  scan(query: { deviceIds: readonly string[]; from: Date; to: Date }): AsyncIterable<RawSample>;
  /** Every stored sample of these device-hours (to recompute an hour exactly). */
  hours(keys: readonly DeviceHour[]): Promise<RawSample[]>;
  /** The device-hours that received samples stored at or after `since` (ingestion time). */
  changedSince(since: Date): Promise<DeviceHour[]>;
  ensureIndexes(): Promise<void>;
}

/** The fields of a stored sample (shared/telemetry.ts) that reports read. */
type StoredSample = Pick<TelemetrySampleDocument, '_id' | 'deviceId' | 'ts' | 'metrics' | 'ingestedAt'>;

/**
 * Up to this many devices a scan filters by device (telemetry-ingest's `{deviceId, ts}` index); beyond it,
 * by time alone (its `{ts}` TTL index) and the devices here. A long `$in` list is evaluated per document by
 * servers that scan (mongo-java-server: ~35 µs per document for 200 ids, ~2 µs for one).
 */
const MAX_DEVICES_PER_FILTER = 8;
const PROJECTION = { deviceId: 1, ts: 1, metrics: 1 } as const;

export function createMongoTelemetrySource(mongo: MongoHandle): TelemetrySource {
  const collection = async (): Promise<Collection<StoredSample>> =>
    (await mongo.db()).collection<StoredSample>(TELEMETRY_COLLECTION);
  const toSample = (doc: Pick<StoredSample, '_id' | 'deviceId' | 'ts' | 'metrics'>): RawSample => ({
    id: doc._id,
    deviceId: doc.deviceId,
    ts: doc.ts,
    metrics: doc.metrics ?? {},
  });

  return {
    async *scan({ deviceIds, from, to }) {
      if (deviceIds.length === 0) return;
      const byDevice = deviceIds.length <= MAX_DEVICES_PER_FILTER;
      const filter: Filter<StoredSample> = { ts: { $gte: from, $lt: to } };
      if (byDevice) filter.deviceId = deviceIds.length === 1 ? deviceIds[0]! : { $in: [...deviceIds] };
      const wanted = new Set(deviceIds);
      const cursor = (await withMongo(collection)).find(filter, { projection: PROJECTION, batchSize: 10_000 });
      for await (const doc of withMongoIterable(cursor)) {
        if (byDevice || wanted.has(doc.deviceId)) yield toSample(doc);
      }
    },

    hours: (keys) =>
      withMongo(async () => {
        const out: RawSample[] = [];
        for (let offset = 0; offset < keys.length; offset += 100) {
          const $or = keys
            .slice(offset, offset + 100)
            .map((k) => ({ deviceId: k.deviceId, ts: { $gte: new Date(k.hour), $lt: new Date(k.hour + HOUR_MS) } }));
          const docs = await (await collection()).find({ $or }, { projection: PROJECTION }).toArray();
          out.push(...docs.map(toSample));
        }
        return out;
      }),

    changedSince: (since) =>
      withMongo(async () => {
        // Device and hour of what arrived since: grouped here, which every server supports alike.
        const seen = new Map<string, DeviceHour>();
        const cursor = (await collection()).find(
          { ingestedAt: { $gte: since } },
          { projection: { _id: 0, deviceId: 1, ts: 1 }, batchSize: 10_000 },
        );
        for await (const doc of cursor) {
          const hour = floorTo(doc.ts.getTime(), HOUR_MS);
          const key = `${doc.deviceId}\u0000${hour}`;
          if (!seen.has(key)) seen.set(key, { deviceId: doc.deviceId, hour });
        }
        return [...seen.values()];
      }),

    ensureIndexes: () =>
      withMongo(async () => {
        // Finding what arrived since the last rollup run must not scan all raw samples.
        await (await collection()).createIndex({ ingestedAt: 1 }, { name: 'ingestedAt_rollups' });
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
