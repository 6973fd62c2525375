import { setTimeout as sleep } from 'node:timers/promises';
import { ConflictError, PreconditionFailedError } from './errors.js';
import { insertIfAbsent, type MongoHandle, withMongo } from './mongo.js';
import type { RedisHandle } from './redis.js';
import { withRedis } from './redis.js';
import { luaScript } from './redis-script.js';
import { emptyShadow, type Shadow } from './shadow.js';

/** The MongoDB collection of durable shadows (`_id` = device id). */
export const SHADOWS_COLLECTION = 'shadows';

/**
 * The Redis hash of a shadow (fields `v`: version, `doc`: the JSON shadow). The device id is a
 * Cluster hash tag (`{…}`), so it shares a slot with the capability's other keys of that device.
 */
export const shadowKey = (prefix: string, deviceId: string) => `${prefix}:{${deviceId}}:shadow`;

/** Publishes a committed version unless the hash already holds a newer one (versions only move forward). */
const CACHE_IF_NEWER = luaScript(`
local current = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if current >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'doc', ARGV[2])
return 1
`);

/**
 * Where shadows live. MongoDB holds the durable copy and decides every race: a change is committed
 * there with a compare-and-set on the version it was built on. Redis holds a hot copy for reads and
 * as the usual starting point of a change. The hot copy may be behind — Redis replicates
 * asynchronously, so a failover can lose its last writes; a restart without the append-only file loses
 * more — and a change built on it then fails its commit and is made again on the durable copy, so no
 * acknowledged change is ever lost. Tests may pass their own store.
 */
export interface ShadowStore {
  /** The hot copy from Redis; on a miss (a flushed or replaced Redis) the durable copy, warming Redis. */
  load(deviceId: string): Promise<Shadow>;
  /** The durable copy from MongoDB, also written to the hot copy when that is behind. */
  refresh(deviceId: string): Promise<Shadow>;
  /** Stores `shadow` in MongoDB if it still holds `baseVersion`; false when another change got there first. */
  commit(shadow: Shadow, baseVersion: number): Promise<boolean>;
  /** Writes a committed shadow to the hot copy, unless the hot copy already holds a newer version. */
  cache(shadow: Shadow): Promise<void>;
}

/**
 * The shadow store on the shared Redis and MongoDB handles. Every capability must pass the same
 * `prefix` (telemetry-ingest's `REDIS_PREFIX`, command-dispatch's `SHADOW_REDIS_PREFIX`; default
 * `kiot:ti`) to see the same hashes. Failures of either store surface as 503 (`withRedis`/`withMongo`).
 */
export function createShadowStore(redis: RedisHandle, mongo: MongoHandle, prefix: string): ShadowStore {
  type ShadowDocument = Omit<Shadow, 'deviceId'> & { _id: string };
  const collection = async () => (await mongo.db()).collection<ShadowDocument>(SHADOWS_COLLECTION);

  const store: ShadowStore = {
    async load(deviceId) {
      const doc = await withRedis(async () => (await redis.client()).hget(shadowKey(prefix, deviceId), 'doc'));
      return doc ? (JSON.parse(doc) as Shadow) : store.refresh(deviceId);
    },
    async refresh(deviceId) {
      const doc = await withMongo(async () => (await collection()).findOne({ _id: deviceId }));
      if (!doc) return emptyShadow(deviceId);
      const { _id, ...rest } = doc;
      const durable: Shadow = { ...emptyShadow(deviceId), ...rest, deviceId: _id };
      // Never an empty shadow: reads of unknown devices leave no keys behind.
      if (durable.version > 0) await store.cache(durable);
      return durable;
    },
    commit: (shadow, baseVersion) =>
      withMongo(async () => {
        const { deviceId, ...fields } = shadow;
        // The first version is an insert; the unique _id makes a concurrent first version lose.
        if (baseVersion === 0) return insertIfAbsent(await collection(), { _id: deviceId, ...fields });
        const result = await (await collection()).updateOne({ _id: deviceId, version: baseVersion }, { $set: fields });
        return result.matchedCount === 1;
      }),
    cache: (shadow) =>
      withRedis(async () => {
        await CACHE_IF_NEWER.run(
          await redis.client(),
          [shadowKey(prefix, shadow.deviceId)],
          [shadow.version, JSON.stringify(shadow)],
        );
      }),
  };
  return store;
}

/** Changes of one device's shadow in this process, chained per store: see `updateShadow`. */
const chains = new WeakMap<ShadowStore, Map<string, Promise<void>>>();

function oneAtATime<T>(store: ShadowStore, deviceId: string, work: () => Promise<T>): Promise<T> {
  let byDevice = chains.get(store);
  if (!byDevice) {
    byDevice = new Map();
    chains.set(store, byDevice);
  }
  const run = (byDevice.get(deviceId) ?? Promise.resolve()).then(work);
  const tail = run.then(
    () => undefined,
    () => undefined,
  );
  byDevice.set(deviceId, tail);
  void tail.then(() => byDevice.get(deviceId) === tail && byDevice.delete(deviceId));
  return run;
}

/**
 * One shadow change with optimistic concurrency: load (the hot copy), change, commit to MongoDB with a
 * compare-and-set on the version the change was built on, then update the hot copy. A lost commit —
 * another writer (another instance, the other capability) was faster, or the hot copy was behind —
 * means change again on top of the durable copy, after a short random pause; changes of one device in
 * this process wait for each other instead of racing, so a burst of reports does not exhaust the
 * attempts. With `ifMatch` (RFC 9110 §13.1.1) the caller's version must be current:
 * `PreconditionFailedError` (412) instead of a retry. `change` may throw (e.g. `applyReport`'s size
 * check): nothing is written. Out of attempts: `ConflictError` (409, `shadow_contended`), which Knative
 * retries with backoff.
 */
export async function updateShadow(
  store: ShadowStore,
  deviceId: string,
  change: (current: Shadow) => Shadow,
  options: { ifMatch?: number; attempts?: number } = {},
): Promise<Shadow> {
  const attempts = options.attempts ?? 8;
  return oneAtATime(store, deviceId, async () => {
    for (let attempt = 1; attempt <= attempts; attempt += 1) {
      let current = attempt === 1 ? await store.load(deviceId) : await store.refresh(deviceId);
      if (options.ifMatch !== undefined && current.version !== options.ifMatch) {
        // The hot copy may be behind: only the durable version refuses the caller.
        if (attempt === 1) current = await store.refresh(deviceId);
        if (current.version !== options.ifMatch) {
          throw new PreconditionFailedError(
            `the shadow of ${deviceId} is at version ${current.version}, not ${options.ifMatch}`,
            { version: current.version },
          );
        }
      }
      const candidate = change(current);
      if (await store.commit(candidate, current.version)) {
        await store.cache(candidate);
        return candidate;
      }
      if (attempt < attempts) await sleep(Math.random() * Math.min(2 ** attempt, 50));
    }
    throw new ConflictError(`the shadow of ${deviceId} changed ${attempts} times while updating`, 'shadow_contended');
  });
}
