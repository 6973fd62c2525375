import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConflictError, InvalidInputError, PreconditionFailedError, type ProblemIssue } from './errors.js';
import { keyIssue, leafIssue } from './json-values.js';
import { isDuplicateKey, type MongoHandle, withMongo } from './mongo.js';
import type { RedisHandle } from './redis.js';
import { withRedis } from './redis.js';

/**
 * The device shadow (AWS IoT device shadow, Azure device twin): the one implementation every
 * capability uses. telemetry-ingest merges what devices report (`applyReport`), command-dispatch what
 * apps desire (`applyDesired`); both go through `updateShadow` on a `ShadowStore`, so they read and
 * write the same Redis hash (`{prefix}:{id}:shadow`, fields `v` and `doc`) and the same `shadows`
 * documents in MongoDB with one compare-and-set protocol and one version line.
 *
 * Layers: pure state logic (checks, merge, timestamps, delta) → the store (hot copy in Redis, durable
 * copy in MongoDB) → `updateShadow` (optimistic concurrency). What admits a device message at all
 * (dedup of redelivered events, rate limits) belongs to the capability that receives it.
 */

/** A plain JSON object (not an array, not null). */
export type JsonObject = Record<string, unknown>;

/**
 * One device's shadow, as stored (Redis `doc`, MongoDB document with `_id` = `deviceId`) and as apps
 * see it. `timestamps` are keyed by JSON pointer (RFC 6901) so that they stay a flat map of plain
 * field names in MongoDB.
 */
export interface Shadow {
  deviceId: string;
  /** What the device last reported, merged report by report (RFC 7386). */
  reported: JsonObject;
  /** What apps want the device to be, merged patch by patch (RFC 7386). */
  desired: JsonObject;
  /** What the device still has to do: desired values that differ from the reported ones. */
  delta: JsonObject;
  /** Grows with every accepted report and every desired update: the ETag of `If-Match`. */
  version: number;
  /** When each leaf was last set (epoch ms), per side. */
  timestamps: { reported: Record<string, number>; desired: Record<string, number> };
  /** ISO time of the last change; null for a shadow that was never written. */
  updatedAt: string | null;
}

/** Bounds of one side (reported or desired): serialised size in bytes, nesting depth. */
export interface StateLimits {
  maxBytes: number;
  maxDepth: number;
}

/** The shadow of a device nothing was ever reported or desired for (version 0). */
export function emptyShadow(deviceId: string): Shadow {
  return {
    deviceId,
    reported: {},
    desired: {},
    delta: {},
    version: 0,
    timestamps: { reported: {}, desired: {} },
    updatedAt: null,
  };
}

const isObject = (value: unknown): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Refuses what cannot be stored: a patch that is not an object, keys MongoDB cannot store as field
 * names (`$` operators, `.` paths, empty), prototype keys, values that would not come back unchanged
 * through JSON (a non-finite number would be stored as `null`, which a merge reads as "delete"; a lone
 * surrogate; shared/json-values.ts), nesting deeper than `limits.maxDepth` — at any depth, arrays
 * included. Throws `InvalidInputError` (400, code `invalid_state`) with up to 20 issues; nothing is merged.
 */
export function checkStatePatch(patch: unknown, limits: StateLimits): asserts patch is JsonObject {
  if (!isObject(patch)) {
    throw new InvalidInputError(
      'a state patch is a JSON object',
      [{ path: '', code: 'invalid_type', message: 'expected an object' }],
      'invalid_state',
    );
  }
  const issues = statePatchIssues(patch, limits);
  if (issues.length > 0)
    throw new InvalidInputError(
      'the state patch has keys, values or nesting that cannot be stored',
      issues,
      'invalid_state',
    );
}

/** Every reason (up to 20) why `checkStatePatch` refuses an object patch; empty when it is storable. */
export function statePatchIssues(patch: JsonObject, limits: StateLimits): ProblemIssue[] {
  const issues: ProblemIssue[] = [];
  const walk = (value: unknown, path: string, depth: number) => {
    if (issues.length >= 20) return;
    if (depth > limits.maxDepth) {
      issues.push({ path, code: 'too_deep', message: `nested deeper than ${limits.maxDepth} levels` });
      return;
    }
    if (Array.isArray(value))
      for (const [index, item] of value.entries()) walk(item, `${path}${path ? '.' : ''}${index}`, depth + 1);
    else if (isObject(value)) {
      for (const [key, child] of Object.entries(value)) {
        const childPath = `${path}${path ? '.' : ''}${key}`;
        const badKey = keyIssue(key);
        if (badKey) issues.push({ path: childPath, code: badKey.code, message: badKey.message });
        else if (key === '' || key.includes('$') || key.includes('.')) {
          issues.push({
            path: childPath,
            code: 'invalid_key',
            message: 'state keys must be non-empty and contain no "$" or "."',
          });
        } else walk(child, childPath, isObject(child) || Array.isArray(child) ? depth + 1 : depth);
      }
    } else {
      const issue = leafIssue(value);
      if (issue) issues.push({ path, code: issue.code, message: issue.message });
    }
  };
  walk(patch, '', 1);
  return issues;
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
export function touchTimestamps(
  timestamps: Record<string, number>,
  patch: JsonObject,
  at: number,
  base = '',
): Record<string, number> {
  const out = base === '' ? { ...timestamps } : timestamps;
  for (const [key, value] of Object.entries(patch)) {
    const pointer = `${base}/${escapePointer(key)}`;
    // Whatever was under this key before is replaced or removed, unless both sides are objects.
    if (!isObject(value))
      for (const existing of Object.keys(out))
        if (existing === pointer || existing.startsWith(`${pointer}/`)) delete out[existing];
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

function deepEqual(a: unknown, b: unknown): boolean {
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

/**
 * The shadow after one accepted device report: merged (RFC 7386), leaves stamped with `at`, the delta
 * shrunk as reported values match, the version one higher. Throws `InvalidInputError` (400,
 * `shadow_too_large`) when the merged reported state exceeds `limits.maxBytes`: nothing is stored.
 */
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

/**
 * The shadow after an app's merge patch of the desired state (RFC 7386), with the same stamping,
 * delta, version and size rule as `applyReport` (for the desired side).
 */
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

/** The MongoDB collection of durable shadows (`_id` = device id). */
export const SHADOWS_COLLECTION = 'shadows';

/**
 * The Redis hash of a shadow (fields `v`: version, `doc`: the JSON shadow). The device id is a
 * Cluster hash tag (`{…}`), so it shares a slot with the capability's other keys of that device.
 */
export const shadowKey = (prefix: string, deviceId: string) => `${prefix}:{${deviceId}}:shadow`;

/** Writes only if Redis still holds `expected` (optimistic concurrency without WATCH round trips). */
const COMPARE_AND_SET = `
local current = redis.call('HGET', KEYS[1], 'v') or '0'
if current ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'doc', ARGV[3])
return 1
`;
const COMPARE_AND_SET_SHA = createHash('sha1').update(COMPARE_AND_SET).digest('hex');

/** Where shadows live: the hot copy in Redis, the durable copy in MongoDB. Tests may pass their own. */
export interface ShadowStore {
  /** The hot copy from Redis; on a miss (a flushed or replaced Redis) the durable copy from MongoDB. */
  load(deviceId: string): Promise<Shadow>;
  /** Replaces the hot copy if it is still at `expectedVersion`; false when someone else was faster. */
  compareAndSet(shadow: Shadow, expectedVersion: number): Promise<boolean>;
  /** Persists to MongoDB unless a newer version is already there. */
  persist(shadow: Shadow): Promise<void>;
}

/**
 * The shadow store on the shared Redis and MongoDB handles. Every capability must pass the same
 * `prefix` (telemetry-ingest's `REDIS_PREFIX`, command-dispatch's `SHADOW_REDIS_PREFIX`; default
 * `kiot:ti`) to see the same hashes. Failures of either store surface as 503 (`withRedis`/`withMongo`).
 */
export function createShadowStore(redis: RedisHandle, mongo: MongoHandle, prefix: string): ShadowStore {
  const collection = async () =>
    (await mongo.db()).collection<Omit<Shadow, 'deviceId'> & { _id: string }>(SHADOWS_COLLECTION);

  async function loadDurable(deviceId: string): Promise<Shadow> {
    const doc = await withMongo(async () => (await collection()).findOne({ _id: deviceId }));
    if (!doc) return emptyShadow(deviceId);
    const { _id, ...rest } = doc;
    return { ...emptyShadow(deviceId), ...rest, deviceId: _id };
  }

  const store: ShadowStore = {
    async load(deviceId) {
      const doc = await withRedis(async () => (await redis.client()).hget(shadowKey(prefix, deviceId), 'doc'));
      if (doc) return JSON.parse(doc) as Shadow;
      const durable = await loadDurable(deviceId);
      // Warm the hot copy (never with an empty shadow: reads of unknown devices leave no keys behind);
      // if a writer raced us, its version wins and ours is simply not written.
      if (durable.version > 0) await store.compareAndSet(durable, 0);
      return durable;
    },
    compareAndSet: (shadow, expectedVersion) =>
      withRedis(async () => {
        const client = await redis.client();
        const args = [
          shadowKey(prefix, shadow.deviceId),
          String(expectedVersion),
          String(shadow.version),
          JSON.stringify(shadow),
        ];
        try {
          return (await client.evalsha(COMPARE_AND_SET_SHA, 1, ...args)) === 1;
        } catch (error) {
          // NOSCRIPT: a restarted or failed-over Redis lost the script cache; EVAL loads it again.
          if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
          return (await client.eval(COMPARE_AND_SET, 1, ...args)) === 1;
        }
      }),
    persist: (shadow) =>
      withMongo(async () => {
        const { deviceId, ...fields } = shadow;
        try {
          await (await collection()).updateOne(
            { _id: deviceId, version: { $lt: shadow.version } },
            { $set: fields },
            { upsert: true },
          );
        } catch (error) {
          // The filter missed because a newer version is stored, so the upsert hit the unique _id: fine.
          if (!isDuplicateKey(error)) throw error;
        }
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
 * One shadow change with optimistic concurrency: load, change, compare-and-set, then persist to
 * MongoDB before returning (so a lost Redis is rebuilt from there). A writer in between (another
 * instance, the other capability) means change again on top of its version, after a short random
 * pause; changes of one device in this process wait for each other instead of racing, so a burst of
 * reports does not exhaust the attempts. With `ifMatch` (RFC 9110 §13.1.1) the caller's version must
 * still be current: `PreconditionFailedError` (412) instead of a retry. `change` may throw (e.g.
 * `applyReport`'s size check): nothing is written. Out of attempts: `ConflictError` (409,
 * `shadow_contended`), which Knative retries with backoff.
 */
export async function updateShadow(
  store: ShadowStore,
  deviceId: string,
  change: (current: Shadow) => Shadow,
  options: { ifMatch?: number; attempts?: number } = {},
): Promise<Shadow> {
  const attempts = options.attempts ?? 8;
  const next = await oneAtATime(store, deviceId, async () => {
    for (let attempt = 1; attempt <= attempts; attempt += 1) {
      const current = await store.load(deviceId);
      if (options.ifMatch !== undefined && current.version !== options.ifMatch) {
        throw new PreconditionFailedError(
          `the shadow of ${deviceId} is at version ${current.version}, not ${options.ifMatch}`,
          { version: current.version },
        );
      }
      const candidate = change(current);
      if (await store.compareAndSet(candidate, current.version)) return candidate;
      if (attempt < attempts) await sleep(Math.random() * Math.min(2 ** attempt, 50));
    }
    throw new ConflictError(`the shadow of ${deviceId} changed ${attempts} times while updating`, 'shadow_contended');
  });
  await store.persist(next);
  return next;
}
