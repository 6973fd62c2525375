import { z } from 'zod';
import type { MongoHandle } from './mongo.js';
import { withMongo } from './mongo.js';
import { createTtlCache, type TtlCache } from './ttl-cache.js';

/**
 * The device registry's documents as every capability reads them. The registry (device-registry) owns
 * the writes; other capabilities read through `createDeviceDirectory` and never import the registry.
 */
export const DEVICES_COLLECTION = 'devices';
export const DEVICE_TYPES_COLLECTION = 'device_types';

/** Device ids are safe in MQTT topics, Mongo keys and URLs: no `$`, no `/`, no wildcards. */
export const DEVICE_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
export const deviceIdSchema = z.string().regex(DEVICE_ID_PATTERN, 'use 1-64 of A-Z a-z 0-9 . _ -');
export const deviceStatusSchema = z.enum(['active', 'disabled']);
/** Metric and state key names: no `$` or `.` (they become Mongo field paths). */
export const METRIC_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;
export const metricNameSchema = z
  .string()
  .regex(METRIC_NAME_PATTERN, 'use a letter or _ then up to 63 of A-Z a-z 0-9 _ -');

/** What a device type may declare about its telemetry: known metrics with units and ranges. */
export const telemetrySchemaSchema = z
  .object({
    metrics: z.record(
      metricNameSchema,
      z
        .object({ unit: z.string().max(32).optional(), min: z.number().optional(), max: z.number().optional() })
        .strict(),
    ),
    /** When false (the default), a metric not listed is rejected. */
    allowUnknownMetrics: z.boolean().default(false),
  })
  .strict();

export type TelemetrySchema = z.infer<typeof telemetrySchemaSchema>;

/** The stored device document (`devices` collection, `_id` = device id). */
export interface DeviceDocument {
  _id: string;
  name?: string;
  type?: string;
  tags: string[];
  metadata: Record<string, unknown>;
  status: z.infer<typeof deviceStatusSchema>;
  /** Salted scrypt hash of the device secret; never returned by an API. */
  credential: { hash: string; rotatedAt: Date };
  createdAt: Date;
  updatedAt: Date;
  version: number;
}

/** The stored device type document (`device_types` collection, `_id` = type name). */
export interface DeviceTypeDocument {
  _id: string;
  telemetrySchema?: TelemetrySchema;
  updatedAt: Date;
  version: number;
}

export interface DeviceView {
  id: string;
  type?: string;
  tags: string[];
  status: z.infer<typeof deviceStatusSchema>;
}

export interface DeviceDirectory {
  device(id: string): Promise<DeviceView | undefined>;
  /** Many devices at once: the cached ones as they are, the others with one query (a batch of messages). */
  devices(ids: Iterable<string>): Promise<Map<string, DeviceView | undefined>>;
  telemetrySchema(type: string): Promise<TelemetrySchema | undefined>;
}

/** How long ageing devices are gathered before their background refresh goes out as one query. */
const REFRESH_GATHER_MS = 50;

/**
 * Read access to the registry for other capabilities, with a short in-process cache: a hot path
 * (telemetry) then reads MongoDB once per device every `ttlMs`, and a disable reaches it within `ttlMs`.
 * The cache is a bounded LRU (`maxEntries` per kind): a fleet larger than the bound keeps its most active
 * devices cached instead of losing every entry at once. A `ttlMs` of 0 caches nothing.
 */
export function createDeviceDirectory(
  mongo: MongoHandle,
  options: { ttlMs?: number; maxEntries?: number; now?: () => number } = {},
): DeviceDirectory {
  const ttlMs = options.ttlMs ?? 2_000;
  const cacheOf = <T>() => createTtlCache<T>({ ttlMs, maxEntries: options.maxEntries ?? 100_000, now: options.now });
  const devices = cacheOf<DeviceView | undefined>();
  const types = cacheOf<TelemetrySchema | undefined>();

  async function cached<T>(cache: TtlCache<T>, key: string, load: () => Promise<T>): Promise<T> {
    const hit = cache.get(key);
    if (hit) return hit.value;
    const value = await withMongo(load);
    cache.set(key, value);
    return value;
  }

  const viewOf = (doc: Pick<DeviceDocument, '_id' | 'type' | 'tags' | 'status'> | null): DeviceView | undefined =>
    // A deleted device is a tombstone until its `deleted` event is out (the registry's outbox): to every
    // reader it no longer exists.
    !doc || (doc.status !== 'active' && doc.status !== 'disabled')
      ? undefined
      : { id: doc._id, type: doc.type, tags: doc.tags ?? [], status: doc.status };
  const projection = { type: 1, tags: 1, status: 1 } as const;

  /** Looks devices up with one query and caches each answer (a missing device too). */
  async function load(ids: string[]): Promise<Map<string, DeviceView | undefined>> {
    const docs = await withMongo(async () =>
      (await mongo.db())
        .collection<DeviceDocument>(DEVICES_COLLECTION)
        .find({ _id: { $in: ids } }, { projection })
        .toArray(),
    );
    const loaded = new Map(docs.map((doc) => [doc._id, viewOf(doc)]));
    for (const id of ids) devices.set(id, loaded.get(id));
    return loaded;
  }
  /**
   * Devices seen again after half their TTL are looked up again in the background, while their entry still
   * answers: an active device then never waits for MongoDB on its messages (devices first seen together would
   * otherwise expire together and stall the batches of that moment), and no entry answers past its TTL, so a
   * disable still takes effect within it. The ids that age within `REFRESH_GATHER_MS` go in one query: devices
   * first seen together age together, and a query per batch for them was itself a burst. A failed refresh
   * changes nothing: the entries expire as before.
   */
  const refreshing = new Set<string>();
  let gathered: string[] = [];
  let gathering: NodeJS.Timeout | undefined;
  function refreshAhead(ids: string[]) {
    for (const id of ids) refreshing.add(id);
    gathered.push(...ids);
    if (gathering !== undefined) return;
    gathering = setTimeout(() => {
      const batch = gathered;
      gathered = [];
      gathering = undefined;
      load(batch)
        .catch(() => undefined)
        .finally(() => {
          for (const id of batch) refreshing.delete(id);
        });
    }, REFRESH_GATHER_MS).unref();
  }

  return {
    device: (id) =>
      cached(devices, id, async () =>
        viewOf(
          await (await mongo.db()).collection<DeviceDocument>(DEVICES_COLLECTION).findOne({ _id: id }, { projection }),
        ),
      ),
    async devices(ids) {
      const found = new Map<string, DeviceView | undefined>();
      const missing: string[] = [];
      const ageing: string[] = [];
      for (const id of ids) {
        const hit = devices.get(id);
        if (hit) {
          found.set(id, hit.value);
          if (devices.remainingMs(id) < ttlMs / 2 && !refreshing.has(id)) ageing.push(id);
        } else if (!found.has(id)) {
          found.set(id, undefined);
          missing.push(id);
        }
      }
      if (ageing.length > 0) refreshAhead(ageing);
      if (missing.length === 0) return found;
      const loaded = await load(missing);
      for (const id of missing) found.set(id, loaded.get(id));
      return found;
    },
    telemetrySchema: (type) =>
      cached(types, type, async () => {
        const doc = await (await mongo.db())
          .collection<DeviceTypeDocument>(DEVICE_TYPES_COLLECTION)
          .findOne({ _id: type }, { projection: { telemetrySchema: 1 } });
        return doc?.telemetrySchema;
      }),
  };
}
