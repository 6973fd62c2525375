import type { Filter } from 'mongodb';
import { DEVICES_COLLECTION, type DeviceDocument } from '../../shared/devices.js';
import type { MongoHandle } from '../../shared/mongo.js';
import { withMongo } from '../../shared/mongo.js';
import type { Scope } from './schema.js';

export interface ResolvedScope {
  deviceIds: string[];
  /** Ids asked for by name that the registry does not know. */
  unknown: string[];
}

/** Read access to the registry's `devices` collection (owned by device-registry; read-only here). */
export interface DeviceScopeReader {
  resolve(scope: Scope, max: number): Promise<ResolvedScope>;
}

export function createDeviceScopeReader(mongo: MongoHandle): DeviceScopeReader {
  return {
    resolve: (scope, max) =>
      withMongo(async () => {
        const devices = (await mongo.db()).collection<DeviceDocument>(DEVICES_COLLECTION);
        let filter: Filter<DeviceDocument>;
        if ('deviceIds' in scope) filter = { _id: { $in: [...new Set(scope.deviceIds)] } };
        else if ('type' in scope) filter = { type: scope.type };
        else if ('tag' in scope) filter = { tags: scope.tag };
        else filter = {};
        // One more than allowed tells "too many" from "exactly the limit".
        const docs = await devices.find(filter, { projection: { _id: 1 }, sort: { _id: 1 }, limit: max + 1 }).toArray();
        const deviceIds = docs.map((doc) => doc._id);
        const known = new Set(deviceIds);
        const unknown = 'deviceIds' in scope ? [...new Set(scope.deviceIds)].filter((id) => !known.has(id)) : [];
        return { deviceIds, unknown };
      }),
  };
}
