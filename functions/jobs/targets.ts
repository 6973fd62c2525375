import type { Document, Filter } from 'mongodb';
import { DEVICES_COLLECTION, type DeviceDocument } from '../../shared/devices.js';
import { type MongoHandle, withMongo } from '../../shared/mongo.js';
import type { Targets } from './schema.js';

/**
 * Which devices a job reaches: the union of its selectors, over active devices of the registry (read through
 * the registry's collection as shared/devices.ts describes it; a disabled device cannot connect, a deleted
 * one is a tombstone with status `deleted`).
 */
export function targetFilter(targets: Targets): Filter<DeviceDocument> {
  const any: Filter<DeviceDocument>[] = [];
  if (targets.deviceIds?.length) any.push({ _id: { $in: targets.deviceIds } });
  if (targets.tags?.length) any.push({ tags: { $in: targets.tags } });
  if (targets.types?.length) any.push({ type: { $in: targets.types } });
  if (targets.query) {
    const query: Document = {};
    if (targets.query.type !== undefined) query.type = targets.query.type;
    if (targets.query.tags?.length) query.tags = { $all: targets.query.tags };
    for (const [key, value] of Object.entries(targets.query.metadata ?? {})) query[`metadata.${key}`] = value;
    any.push(query);
  }
  return { status: 'active', $or: any };
}

export interface TargetDevice {
  id: string;
  type?: string;
  tags: string[];
  metadata: Record<string, unknown>;
  status: string;
}

/** The same rule for one device (a device that joins later, for continuous jobs). */
export function deviceMatches(targets: Targets, device: TargetDevice): boolean {
  if (device.status !== 'active') return false;
  if (targets.deviceIds?.includes(device.id)) return true;
  if (targets.tags?.some((tag) => device.tags.includes(tag))) return true;
  if (device.type !== undefined && targets.types?.includes(device.type)) return true;
  const query = targets.query;
  if (!query) return false;
  if (query.type !== undefined && device.type !== query.type) return false;
  if (query.tags && !query.tags.every((tag) => device.tags.includes(tag))) return false;
  return Object.entries(query.metadata ?? {}).every(([key, value]) => device.metadata[key] === value);
}

export interface TargetResolver {
  /** The matching device ids in id order, page by page (keyset on `_id`). */
  pages(targets: Targets, pageSize: number): AsyncIterable<string[]>;
}

export function createTargetResolver(mongo: MongoHandle): TargetResolver {
  return {
    async *pages(targets, pageSize) {
      let after: string | undefined;
      for (;;) {
        const filter = targetFilter(targets);
        const page = await withMongo(async () =>
          (await mongo.db())
            .collection<DeviceDocument>(DEVICES_COLLECTION)
            .find(after === undefined ? filter : { $and: [filter, { _id: { $gt: after } }] }, {
              projection: { _id: 1 },
            })
            .sort({ _id: 1 })
            .limit(pageSize)
            .toArray(),
        );
        if (page.length === 0) return;
        yield page.map((doc) => doc._id);
        if (page.length < pageSize) return;
        after = page[page.length - 1]!._id;
      }
    },
  };
}
