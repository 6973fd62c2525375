import { InvalidInputError, type ProblemIssue } from './errors.js';
import { keyIssue, leafIssue } from './json-values.js';

/**
 * The device shadow (AWS IoT device shadow, Azure device twin): the one implementation every
 * capability uses. telemetry-ingest merges what devices report (`applyReport`), command-dispatch what
 * apps desire (`applyDesired`); both go through `updateShadow` on a `ShadowStore` (shadow-store.ts), so
 * they read and write the same Redis hash and the same `shadows` documents in MongoDB with one
 * compare-and-set protocol and one version line.
 *
 * Layers: pure state logic (checks, merge, timestamps, delta; this file) → the store (hot copy in Redis,
 * durable copy in MongoDB) → `updateShadow` (optimistic concurrency). What admits a device message at all
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
