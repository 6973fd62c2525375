import { createHash } from 'node:crypto';
import { MongoServerError } from 'mongodb';
import { ConflictError, InvalidInputError, PreconditionFailedError, type ProblemIssue } from './errors.js';
import type { MongoHandle } from './mongo.js';
import { withMongo } from './mongo.js';
import type { RedisHandle } from './redis.js';
import { withRedis } from './redis.js';

/**
 * The device shadow (AWS IoT device shadow, Azure device twin), one implementation for every
 * capability: telemetry-ingest merges what devices report, command-dispatch what apps desire.
 * The state logic and the storage layout are those of functions/telemetry-ingest/shadow.ts and
 * shadow-repository.ts (moved here unchanged in behaviour), so both capabilities read and write the same
 * Redis hash and the same `shadows` documents with one compare-and-set protocol.
 */
export type JsonObject = Record<string, unknown>;

/** `timestamps` are keyed by JSON pointer (RFC 6901): a flat map of plain field names in MongoDB. */
export interface Shadow {
  deviceId: string;
  reported: JsonObject;
  desired: JsonObject;
  /** What the device still has to do: desired values that differ from the reported ones. */
  delta: JsonObject;
  /** Grows with every accepted report and every desired update: the ETag of `If-Match`. */
  version: number;
  timestamps: { reported: Record<string, number>; desired: Record<string, number> };
  updatedAt: string | null;
}

export interface StateLimits {
  maxBytes: number;
  maxDepth: number;
}

export function emptyShadow(deviceId: string): Shadow {
  return { deviceId, reported: {}, desired: {}, delta: {}, version: 0, timestamps: { reported: {}, desired: {} }, updatedAt: null };
}

const isObject = (value: unknown): value is JsonObject => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Refuses keys MongoDB cannot store as field names (`$`, `.`) and nesting deeper than the limit. */
export function checkStatePatch(patch: unknown, limits: StateLimits): asserts patch is JsonObject {
  if (!isObject(patch)) {
    throw new InvalidInputError('a state patch is a JSON object', [{ path: '', code: 'invalid_type', message: 'expected an object' }], 'invalid_state');
  }
  const issues: ProblemIssue[] = [];
  const walk = (value: unknown, path: string, depth: number) => {
    if (issues.length >= 20) return;
    if (depth > limits.maxDepth) {
      issues.push({ path, code: 'too_deep', message: `nested deeper than ${limits.maxDepth} levels` });
      return;
    }
    if (Array.isArray(value)) value.forEach((item, index) => walk(item, `${path}${path ? '.' : ''}${index}`, depth + 1));
    else if (isObject(value)) {
      for (const [key, child] of Object.entries(value)) {
        const childPath = `${path}${path ? '.' : ''}${key}`;
        if (key === '' || key.includes('$') || key.includes('.')) {
          issues.push({ path: childPath, code: 'invalid_key', message: 'state keys must be non-empty and contain no "$" or "."' });
        } else walk(child, childPath, isObject(child) || Array.isArray(child) ? depth + 1 : depth);
      }
    }
  };
  walk(patch, '', 1);
  if (issues.length > 0) throw new InvalidInputError('the state patch has keys or nesting that cannot be stored', issues, 'invalid_state');
}

/** JSON merge patch (RFC 7386 §2): `null` removes, objects merge recursively, anything else replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return patch;
  const result: JsonObject = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

const escapePointer = (key: string) => key.replace(/~/g, '~0').replace(/\//g, '~1');

/** Per-leaf timestamps after a merge patch: set leaves get `at`, removed subtrees lose theirs. */
export function touchTimestamps(timestamps: Record<string, number>, patch: JsonObject, at: number, base = ''): Record<string, number> {
  const out = base === '' ? { ...timestamps } : timestamps;
  for (const [key, value] of Object.entries(patch)) {
    const pointer = `${base}/${escapePointer(key)}`;
    if (!isObject(value)) for (const existing of Object.keys(out)) if (existing === pointer || existing.startsWith(`${pointer}/`)) delete out[existing];
    if (value === null) continue;
    if (isObject(value)) {
      delete out[pointer];
      touchTimestamps(out, value, at, pointer);
    } else out[pointer] = at;
  }
  return out;
}

/** Desired values that differ from the reported ones (AWS `delta`), recursively. */
export function computeDelta(desired: JsonObject, reported: JsonObject): JsonObject {
  const delta: JsonObject = {};
  for (const [key, want] of Object.entries(desired)) {
    const have = reported[key];
    if (isObject(want) && isObject(have)) {
      const inner = computeDelta(want, have);
      if (Object.keys(inner).length > 0) delta[key] = inner;
    } else if (!deepEqual(want, have)) delta[key] = want;
  }
  return delta;
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((item, i) => deepEqual(item, b[i]));
  if (isObject(a) && isObject(b)) {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((key) => key in b && deepEqual(a[key], b[key]));
  }
  return false;
}

function limitSize(side: 'reported' | 'desired', state: JsonObject, limits: StateLimits): void {
  const bytes = Buffer.byteLength(JSON.stringify(state));
  if (bytes <= limits.maxBytes) return;
  throw new InvalidInputError(
    `the ${side} state would be ${bytes} bytes, the limit is ${limits.maxBytes}`,
    [{ path: '', code: 'too_big', message: `at most ${limits.maxBytes} bytes` }],
    'shadow_too_large',
  );
}

/** The shadow after one accepted device report (the delta shrinks as reported values match). */
export function applyReport(shadow: Shadow, patch: JsonObject, at: number, limits: StateLimits): Shadow {
  const reported = mergePatch(shadow.reported, patch) as JsonObject;
  limitSize('reported', reported, limits);
  return {
    ...shadow,
    reported,
    delta: computeDelta(shadow.desired, reported),
    version: shadow.version + 1,
    timestamps: { ...shadow.timestamps, reported: touchTimestamps(shadow.timestamps.reported, patch, at) },
    updatedAt: new Date(at).toISOString(),
  };
}

/** The shadow after an app's merge patch of the desired state (RFC 7386). */
export function applyDesired(shadow: Shadow, patch: JsonObject, at: number, limits: StateLimits): Shadow {
  const desired = mergePatch(shadow.desired, patch) as JsonObject;
  limitSize('desired', desired, limits);
  return {
    ...shadow,
    desired,
    delta: computeDelta(desired, shadow.reported),
    version: shadow.version + 1,
    timestamps: { ...shadow.timestamps, desired: touchTimestamps(shadow.timestamps.desired, patch, at) },
    updatedAt: new Date(at).toISOString(),
  };
}

export const SHADOWS_COLLECTION = 'shadows';

/** The Redis hash of a shadow (fields `v`, `doc`); the device id is a Cluster hash tag. */
export const shadowKey = (prefix: string, deviceId: string) => `${prefix}:{${deviceId}}:shadow`;

/** Writes only if Redis still holds `expected` (optimistic concurrency without WATCH round trips). */
const COMPARE_AND_SET = `
local current = redis.call('HGET', KEYS[1], 'v') or '0'
if current ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'doc', ARGV[3])
return 1
`;
const COMPARE_AND_SET_SHA = createHash('sha1').update(COMPARE_AND_SET).digest('hex');

export interface ShadowStore {
  /** The hot copy from Redis; on a miss (a flushed Redis) the durable copy from MongoDB. */
  load(deviceId: string): Promise<Shadow>;
  /** Replaces the hot copy if it is still at `expectedVersion`; false when someone else was faster. */
  compareAndSet(shadow: Shadow, expectedVersion: number): Promise<boolean>;
  /** Persists to MongoDB unless a newer version is already there. */
  persist(shadow: Shadow): Promise<void>;
}

/** `prefix` must be the one telemetry-ingest uses (its `REDIS_PREFIX`, default `kiot:ti`). */
export function createShadowStore(redis: RedisHandle, mongo: MongoHandle, prefix: string): ShadowStore {
  const collection = async () => (await mongo.db()).collection<Omit<Shadow, 'deviceId'> & { _id: string }>(SHADOWS_COLLECTION);
  const store: ShadowStore = {
    async load(deviceId) {
      const doc = await withRedis(async () => (await redis.client()).hget(shadowKey(prefix, deviceId), 'doc'));
      if (doc) return JSON.parse(doc) as Shadow;
      const durable = await withMongo(async () => (await collection()).findOne({ _id: deviceId }));
      if (!durable) return emptyShadow(deviceId);
      const { _id, ...rest } = durable;
      const shadow = { ...emptyShadow(deviceId), ...rest, deviceId: _id };
      // Warm the hot copy; if a writer raced us, its version wins and ours is simply not written.
      await store.compareAndSet(shadow, 0);
      return shadow;
    },
    compareAndSet: (shadow, expectedVersion) =>
      withRedis(async () => {
        const client = await redis.client();
        const args = [shadowKey(prefix, shadow.deviceId), String(expectedVersion), String(shadow.version), JSON.stringify(shadow)];
        try {
          return (await client.evalsha(COMPARE_AND_SET_SHA, 1, ...args)) === 1;
        } catch (error) {
          if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
          return (await client.eval(COMPARE_AND_SET, 1, ...args)) === 1;
        }
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
  return store;
}

/**
 * One shadow change with optimistic concurrency: load, change, compare-and-set, persist; a writer in
 * between means change again on top of its version. With `ifMatch` (RFC 9110 §13.1.1) the caller's
 * version must still be current: 412 instead of a retry.
 */
export async function updateShadow(
  store: ShadowStore,
  deviceId: string,
  change: (current: Shadow) => Shadow,
  options: { ifMatch?: number; attempts?: number } = {},
): Promise<Shadow> {
  const attempts = options.attempts ?? 8;
  for (let attempt = 1; attempt <= attempts; attempt += 1) {
    const current = await store.load(deviceId);
    if (options.ifMatch !== undefined && current.version !== options.ifMatch) {
      throw new PreconditionFailedError(`the shadow of ${deviceId} is at version ${current.version}, not ${options.ifMatch}`, { version: current.version });
    }
    const next = change(current);
    if (await store.compareAndSet(next, current.version)) {
      await store.persist(next);
      return next;
    }
  }
  throw new ConflictError(`the shadow of ${deviceId} changed ${attempts} times while updating`, 'shadow_contended');
}
