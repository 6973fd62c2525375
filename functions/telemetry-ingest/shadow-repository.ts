import { MongoServerError } from 'mongodb';
import type { MongoHandle } from '../../shared/mongo.js';
import { withMongo } from '../../shared/mongo.js';
import type { RedisHandle } from '../../shared/redis.js';
import { withRedis } from '../../shared/redis.js';
import { luaScript } from './lua.js';
import type { RedisKeys } from './redis-keys.js';
import { emptyShadow, type Shadow } from './shadow.js';

export const SHADOWS_COLLECTION = 'shadows';

interface ShadowDocument extends Omit<Shadow, 'deviceId'> {
  _id: string;
}

/** Writes the shadow only if Redis still holds `expected` (optimistic concurrency, no WATCH round trips). */
const COMPARE_AND_SET = luaScript(`
local current = redis.call('HGET', KEYS[1], 'v') or '0'
if current ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'doc', ARGV[3])
return 1
`);

export interface ShadowRepository {
  /** The hot copy from Redis; on a miss (a flushed or replaced Redis) the durable copy from MongoDB. */
  load(deviceId: string): Promise<Shadow>;
  /** Replaces the hot copy if it is still at `expectedVersion`; false when someone else was faster. */
  compareAndSet(shadow: Shadow, expectedVersion: number): Promise<boolean>;
  /** Persists to MongoDB unless a newer version is already there. */
  persist(shadow: Shadow): Promise<void>;
}

export function createShadowRepository(redis: RedisHandle, mongo: MongoHandle, keys: RedisKeys): ShadowRepository {
  const collection = async () => (await mongo.db()).collection<ShadowDocument>(SHADOWS_COLLECTION);

  async function loadDurable(deviceId: string): Promise<Shadow> {
    const doc = await withMongo(async () => (await collection()).findOne({ _id: deviceId }));
    if (!doc) return emptyShadow(deviceId);
    const { _id, ...rest } = doc;
    return { ...emptyShadow(deviceId), ...rest, deviceId: _id };
  }

  return {
    async load(deviceId) {
      const doc = await withRedis(async () => (await redis.client()).hget(keys.shadow(deviceId), 'doc'));
      if (doc) return JSON.parse(doc) as Shadow;
      const durable = await loadDurable(deviceId);
      // Warm the hot copy; if a report raced us, its version wins and ours is simply not written.
      if (durable.version > 0) await this.compareAndSet(durable, 0);
      return durable;
    },
    compareAndSet: (shadow, expectedVersion) =>
      withRedis(async () => {
        const written = await COMPARE_AND_SET.run(
          await redis.client(),
          [keys.shadow(shadow.deviceId)],
          [String(expectedVersion), String(shadow.version), JSON.stringify(shadow)],
        );
        return written === 1;
      }),
    persist: (shadow) =>
      withMongo(async () => {
        const { deviceId, ...fields } = shadow;
        try {
          await (await collection()).updateOne({ _id: deviceId, version: { $lt: shadow.version } }, { $set: fields }, { upsert: true });
        } catch (error) {
          // The filter missed because a newer version is stored, so the upsert hit the unique _id: fine.
          if (!(error instanceof MongoServerError && error.code === 11000)) throw error;
        }
      }),
  };
}
