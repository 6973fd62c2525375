import { MongoBulkWriteError, MongoServerError, type Collection, type Filter } from 'mongodb';
import {
  DEVICES_COLLECTION,
  DEVICE_TYPES_COLLECTION,
  type DeviceDocument,
  type DeviceTypeDocument,
  type TelemetrySchema,
} from '../../shared/devices.js';
import { withMongo, type MongoHandle } from '../../shared/mongo.js';

/**
 * The registry's device document: `shared/devices.ts`'s shape plus `brokerSynced`, false while the broker
 * does not (yet) hold the device's client. Only a registration that never reached the broker leaves it
 * false; such a document may be taken over by a retry of the same registration (see register-device.ts).
 */
export type RegistryDevice = DeviceDocument & { brokerSynced?: boolean; provisionedBy?: { tokenId: string; requestId: string } };

export interface DeviceFilter {
  type?: string;
  tag?: string;
  status?: DeviceDocument['status'];
}

export interface DeviceRepository {
  /** `false` when the id is taken. */
  insert(device: RegistryDevice): Promise<boolean>;
  /** Inserts what it can (unordered); returns the indexes refused as duplicates. */
  insertMany(devices: RegistryDevice[]): Promise<Set<number>>;
  find(id: string): Promise<RegistryDevice | undefined>;
  list(filter: DeviceFilter, afterId: string | undefined, limit: number): Promise<RegistryDevice[]>;
  /** Replaces a never-synced document of the same version (a retried registration); `false` if it changed. */
  replaceUnsynced(previous: RegistryDevice, next: RegistryDevice): Promise<boolean>;
  markSynced(ids: string[]): Promise<void>;
  /** Compensation when the broker refused: removes documents still unsynced. */
  removeUnsynced(ids: string[]): Promise<void>;
  /** Applies `set` when the version still matches, bumping it; `undefined` on a version mismatch. */
  update(id: string, version: number, set: Partial<RegistryDevice>): Promise<RegistryDevice | undefined>;
  remove(id: string): Promise<boolean>;
  getType(type: string): Promise<DeviceTypeDocument | undefined>;
  putType(type: string, telemetrySchema: TelemetrySchema, now: Date): Promise<DeviceTypeDocument>;
}

const DUPLICATE_KEY = 11000;

export function isDuplicateKey(error: unknown): boolean {
  return error instanceof MongoServerError && error.code === DUPLICATE_KEY;
}

export function createDeviceRepository(mongo: MongoHandle): DeviceRepository {
  const devices = async (): Promise<Collection<RegistryDevice>> => (await mongo.db()).collection<RegistryDevice>(DEVICES_COLLECTION);
  const types = async (): Promise<Collection<DeviceTypeDocument>> => (await mongo.db()).collection<DeviceTypeDocument>(DEVICE_TYPES_COLLECTION);

  return {
    insert: (device) =>
      withMongo(async () => {
        try {
          await (await devices()).insertOne(device);
          return true;
        } catch (error) {
          if (isDuplicateKey(error)) return false;
          throw error;
        }
      }),
    insertMany: (docs) =>
      withMongo(async () => {
        if (docs.length === 0) return new Set<number>();
        try {
          await (await devices()).insertMany(docs, { ordered: false });
          return new Set<number>();
        } catch (error) {
          if (!(error instanceof MongoBulkWriteError)) throw error;
          const writeErrors = Array.isArray(error.writeErrors) ? error.writeErrors : [error.writeErrors];
          const other = writeErrors.find((w) => w.code !== DUPLICATE_KEY);
          if (other) throw error;
          return new Set(writeErrors.map((w) => w.index));
        }
      }),
    find: (id) => withMongo(async () => (await (await devices()).findOne({ _id: id })) ?? undefined),
    list: (filter, afterId, limit) =>
      withMongo(async () => {
        const query: Filter<RegistryDevice> = {};
        if (filter.type) query.type = filter.type;
        if (filter.tag) query.tags = filter.tag;
        if (filter.status) query.status = filter.status;
        // Keyset pagination on the unique _id: a page starts after the last id seen, so devices added
        // meanwhile neither shift nor repeat items (an offset would).
        if (afterId !== undefined) query._id = { $gt: afterId };
        return (await devices()).find(query).sort({ _id: 1 }).limit(limit).toArray();
      }),
    replaceUnsynced: (previous, next) =>
      withMongo(async () => {
        const result = await (await devices()).replaceOne({ _id: previous._id, version: previous.version, brokerSynced: false }, next);
        return result.modifiedCount === 1;
      }),
    markSynced: (ids) =>
      withMongo(async () => {
        if (ids.length > 0) await (await devices()).updateMany({ _id: { $in: ids } }, { $set: { brokerSynced: true } });
      }),
    removeUnsynced: (ids) =>
      withMongo(async () => {
        if (ids.length > 0) await (await devices()).deleteMany({ _id: { $in: ids }, brokerSynced: false });
      }),
    update: (id, version, set) =>
      withMongo(async () => {
        const updated = await (await devices()).findOneAndUpdate(
          { _id: id, version },
          { $set: set, $inc: { version: 1 } },
          { returnDocument: 'after' },
        );
        return updated ?? undefined;
      }),
    remove: (id) => withMongo(async () => (await (await devices()).deleteOne({ _id: id })).deletedCount === 1),
    getType: (type) => withMongo(async () => (await (await types()).findOne({ _id: type })) ?? undefined),
    putType: (type, telemetrySchema, now) =>
      withMongo(async () => {
        const updated = await (await types()).findOneAndUpdate(
          { _id: type },
          { $set: { telemetrySchema, updatedAt: now }, $inc: { version: 1 } },
          { upsert: true, returnDocument: 'after' },
        );
        return updated!;
      }),
  };
}
