import type { Collection, Filter } from 'mongodb';
import {
  DEVICE_TYPES_COLLECTION,
  DEVICES_COLLECTION,
  type DeviceDocument,
  type DeviceTypeDocument,
  type TelemetrySchema,
} from '../../shared/devices.js';
import { insertIfAbsent, type MongoHandle, unorderedInsertErrors, withMongo } from '../../shared/mongo.js';
import type { OutboxStore, Pending, PendingEvent } from './outbox.js';
import type { Registration } from './registration-batches.js';
import type { DeviceSummary } from './schema.js';

/**
 * The registry's device document: `shared/devices.ts`'s shape plus `brokerSynced`, false while the broker
 * does not (yet) hold the device's client. Only a registration that never reached the broker leaves it
 * false; such a document may be taken over by a retry of the same registration (see register-device.ts).
 * `pendingEvents` is the document's outbox (outbox.ts): events its last writes caused, not yet at the sink.
 */
export type RegistryDevice = DeviceDocument & {
  brokerSynced?: boolean;
  provisionedBy?: { tokenId: string; requestId: string };
  pendingEvents?: PendingEvent[];
  /** A bulk registration's event, owed while its batch record exists (registration-batches.ts); a tombstone keeps it. */
  registeredIn?: Registration;
};

/**
 * What a device document holds in the collection: a device, or the tombstone a delete leaves until its
 * `io.kiot.device.deleted` is out (`{_id, status:'deleted', deletedAt, pendingEvents}`, nothing else).
 * Every read of this repository filters tombstones out; only claiming an id looks at them.
 */
type StoredDevice = Omit<RegistryDevice, 'status'> & { status: RegistryDevice['status'] | 'deleted'; deletedAt?: Date };

export const TOMBSTONE_STATUS = 'deleted';
const LIVE = { status: { $ne: TOMBSTONE_STATUS } } as const;
/** Every field a device has besides _id, status and pendingEvents: what a tombstone drops. */
const DEVICE_FIELDS = [
  'name',
  'type',
  'tags',
  'metadata',
  'credential',
  'createdAt',
  'updatedAt',
  'version',
  'brokerSynced',
  'provisionedBy',
] as const;
const unsetAll = Object.fromEntries(DEVICE_FIELDS.map((field) => [field, ''])) as Record<
  (typeof DEVICE_FIELDS)[number],
  ''
>;

export interface DeviceFilter {
  type?: string;
  tag?: string;
  status?: DeviceDocument['status'];
  idPrefix?: string;
  ids?: string[];
}

export interface DeviceRepository extends OutboxStore {
  /** `false` when the id is taken (by a device or a tombstone). */
  insert(device: RegistryDevice): Promise<boolean>;
  /** Inserts what it can (unordered); returns the indexes refused as duplicates. */
  insertMany(devices: RegistryDevice[]): Promise<Set<number>>;
  /** A device (never a tombstone). */
  find(id: string): Promise<RegistryDevice | undefined>;
  list(filter: DeviceFilter, afterId: string | undefined, limit: number): Promise<RegistryDevice[]>;
  /**
   * Makes the tombstone of a deleted device the new (unsynced) device, keeping the events the delete left
   * pending, in one write; `false` when `device._id` holds no tombstone.
   */
  claimTombstone(device: RegistryDevice): Promise<boolean>;
  /** Rewrites a never-synced document of the same version (a retried registration); `false` if it changed. */
  replaceUnsynced(previous: RegistryDevice, next: RegistryDevice): Promise<boolean>;
  /** Marks registrations synced, each pushing its `io.kiot.device.registered` in the same write. */
  markSynced(synced: { id: string; event: PendingEvent }[]): Promise<void>;
  /** Compensation when the broker refused: removes documents still unsynced (back to a tombstone if one was claimed). */
  removeUnsynced(ids: string[]): Promise<void>;
  /** Applies `set` and pushes `event` when the version still matches, bumping it; `undefined` on a version mismatch. */
  update(
    id: string,
    version: number,
    set: Partial<RegistryDevice>,
    event: PendingEvent,
  ): Promise<RegistryDevice | undefined>;
  /** Turns the device into a tombstone holding `event` (and whatever was pending) when the version still matches. */
  tombstone(id: string, version: number, event: PendingEvent, now: Date): Promise<Pending | undefined>;
  /** Live, synced devices counted by status and by type. */
  summary(): Promise<DeviceSummary>;
  getType(type: string): Promise<DeviceTypeDocument | undefined>;
  putType(type: string, telemetrySchema: TelemetrySchema, now: Date): Promise<DeviceTypeDocument>;
  /** The outbox's index: the flush and the tick gate look for stale events without scanning the fleet. */
  ensureIndexes(): Promise<void>;
}

export function createDeviceRepository(mongo: MongoHandle): DeviceRepository {
  const devices = async (): Promise<Collection<StoredDevice>> =>
    (await mongo.db()).collection<StoredDevice>(DEVICES_COLLECTION);
  const live = (doc: StoredDevice | null): RegistryDevice | undefined =>
    doc && doc.status !== TOMBSTONE_STATUS ? (doc as RegistryDevice) : undefined;
  const types = async (): Promise<Collection<DeviceTypeDocument>> =>
    (await mongo.db()).collection<DeviceTypeDocument>(DEVICE_TYPES_COLLECTION);

  return {
    ensureIndexes: () =>
      withMongo(async () => {
        await (await devices()).createIndex({ 'pendingEvents.at': 1 }, { name: 'outbox_pending', sparse: true });
      }),
    insert: (device) => withMongo(async () => insertIfAbsent(await devices(), device)),
    insertMany: (docs) =>
      withMongo(async () => {
        if (docs.length === 0) return new Set<number>();
        try {
          await (await devices()).insertMany(docs, { ordered: false });
          return new Set<number>();
        } catch (error) {
          const errors = unorderedInsertErrors(error);
          if (!errors || errors.others.length > 0) throw error;
          return new Set(errors.duplicates);
        }
      }),
    // By `_id` alone, tombstones dropped by `live`: mongo-java-server answers from an index only a filter whose keys
    // are exactly the index's (AbstractUniqueIndex.canHandle), so `{_id, status}` scanned every device — ~20 ms per
    // broker connect (kiot-auth's authn) with 10,000 devices registered, growing with the fleet.
    find: (id) => withMongo(async () => live(await (await devices()).findOne({ _id: id }))),
    list: (filter, afterId, limit) =>
      withMongo(async () => {
        const query: Filter<StoredDevice> = { ...LIVE };
        if (filter.type) query.type = filter.type;
        if (filter.tag) query.tags = filter.tag;
        if (filter.status) query.status = filter.status;
        // Keyset pagination on the unique _id: a page starts after the last id seen, so devices added
        // meanwhile neither shift nor repeat items (an offset would). A prefix is a range of the same index
        // (ids use only characters below U+007B, so `prefix + '{'` bounds every id that starts with it).
        const ids: Record<string, unknown> = {};
        if (filter.idPrefix !== undefined) Object.assign(ids, { $gte: filter.idPrefix, $lt: `${filter.idPrefix}{` });
        if (filter.ids !== undefined) ids.$in = filter.ids;
        if (afterId !== undefined) ids.$gt = afterId;
        if (Object.keys(ids).length > 0) query._id = ids as Filter<StoredDevice>['_id'];
        return (await (await devices()).find(query).sort({ _id: 1 }).limit(limit).toArray()) as RegistryDevice[];
      }),
    summary: () =>
      withMongo(async () => {
        // One pass over the devices; $group by (type, status) is in every MongoDB-compatible server.
        const groups = await (await devices())
          .aggregate<{ _id: { type?: string | null; status: string }; n: number }>([
            { $match: { ...LIVE, brokerSynced: { $ne: false } } },
            { $group: { _id: { type: '$type', status: '$status' }, n: { $sum: 1 } } },
          ])
          .toArray();
        return summarize(groups.map((group) => ({ ...group._id, n: group.n })));
      }),
    claimTombstone: (device) =>
      withMongo(async () => {
        const { _id, pendingEvents: _ignored, ...fields } = device;
        // $set, never a replace: the events the delete left pending stay, in order, ahead of the new ones.
        const result = await (await devices()).updateOne(
          { _id, status: TOMBSTONE_STATUS },
          { $set: fields, $unset: { deletedAt: '' } },
        );
        return result.modifiedCount === 1;
      }),
    replaceUnsynced: (previous, next) =>
      withMongo(async () => {
        const { _id, pendingEvents: _ignored, ...fields } = next;
        const gone = Object.keys(previous).filter(
          (key) => key !== '_id' && key !== 'pendingEvents' && key !== 'registeredIn' && !(key in fields),
        );
        const result = await (await devices()).updateOne(
          { _id: previous._id, version: previous.version, brokerSynced: false },
          { $set: fields, ...(gone.length > 0 ? { $unset: Object.fromEntries(gone.map((key) => [key, ''])) } : {}) },
        );
        return result.modifiedCount === 1;
      }),
    markSynced: (synced) =>
      withMongo(async () => {
        if (synced.length === 0) return;
        await (await devices()).bulkWrite(
          synced.map(({ id, event }) => ({
            updateOne: {
              filter: { _id: id, brokerSynced: false },
              update: { $set: { brokerSynced: true }, $push: { pendingEvents: event } },
            },
          })),
          { ordered: false },
        );
      }),
    removeUnsynced: (ids) =>
      withMongo(async () => {
        if (ids.length === 0) return;
        const collection = await devices();
        await collection.deleteMany({ _id: { $in: ids }, brokerSynced: false, 'pendingEvents.0': { $exists: false } });
        // A registration that had claimed a tombstone gives it back, with the delete's events still pending.
        await collection.updateMany(
          { _id: { $in: ids }, brokerSynced: false },
          { $set: { status: TOMBSTONE_STATUS, deletedAt: new Date() }, $unset: unsetAll },
        );
      }),
    update: (id, version, set, event) =>
      withMongo(async () => {
        const updated = await (await devices()).findOneAndUpdate(
          { _id: id, version, ...LIVE },
          { $set: set, $inc: { version: 1 }, $push: { pendingEvents: event } },
          { returnDocument: 'after' },
        );
        return live(updated);
      }),
    tombstone: (id, version, event, now) =>
      withMongo(async () => {
        const tomb = await (await devices()).findOneAndUpdate(
          { _id: id, version, ...LIVE },
          { $set: { status: TOMBSTONE_STATUS, deletedAt: now }, $unset: unsetAll, $push: { pendingEvents: event } },
          { returnDocument: 'after' },
        );
        return tomb
          ? { events: tomb.pendingEvents ?? [], tombstone: true, registration: tomb.registeredIn }
          : undefined;
      }),
    pendingOf: (id) =>
      withMongo(async () => {
        const doc = await (await devices()).findOne(
          { _id: id },
          { projection: { status: 1, pendingEvents: 1, registeredIn: 1 } },
        );
        return doc
          ? {
              events: doc.pendingEvents ?? [],
              tombstone: doc.status === TOMBSTONE_STATUS,
              registration: doc.registeredIn,
            }
          : undefined;
      }),
    withEventsBefore: (before, limit) =>
      withMongo(async () => {
        const docs = await (await devices())
          .find({ 'pendingEvents.at': { $lt: before } }, { projection: { _id: 1 } })
          .limit(limit)
          .toArray();
        return docs.map((doc) => doc._id);
      }),
    settle: (id, eventId) =>
      withMongo(async () => {
        // A bulk registration's event, if any, went out before this one: the device owes it no more.
        await (await devices()).updateOne(
          { _id: id },
          { $pull: { pendingEvents: { id: eventId } }, $unset: { registeredIn: '' } },
        );
      }),
    settleMany: (delivered) =>
      withMongo(async () => {
        if (delivered.length === 0) return;
        // One update per document by _id, not one updateMany over `_id: {$in: ids}`: mongo-java-server scans for
        // an $in (measured: 1,000 ids take ~1 s there, this ~0.1 s); MongoDB is fast either way.
        await (await devices()).bulkWrite(
          delivered.map(({ id, eventId }) => ({
            updateOne: { filter: { _id: id }, update: { $pull: { pendingEvents: { id: eventId } } } },
          })),
          { ordered: false },
        );
      }),
    dropSettledTombstone: (id) =>
      withMongo(async () => {
        await (await devices()).deleteOne({ _id: id, status: TOMBSTONE_STATUS, 'pendingEvents.0': { $exists: false } });
      }),
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

/** Folds (type, status) counts into the summary's shape. */
export function summarize(groups: { type?: string | null; status: string; n: number }[]): DeviceSummary {
  const byStatus = { active: 0, disabled: 0 };
  const byType = new Map<string | null, number>();
  for (const { type, status, n } of groups) {
    if (status === 'active' || status === 'disabled') byStatus[status] += n;
    byType.set(type ?? null, (byType.get(type ?? null) ?? 0) + n);
  }
  return {
    total: byStatus.active + byStatus.disabled,
    byStatus,
    byType: [...byType]
      .map(([type, devices]) => ({ type, devices }))
      .sort((a, b) => b.devices - a.devices || String(a.type).localeCompare(String(b.type))),
  };
}
