import { InvalidInputError, type ProblemIssue } from '../../shared/errors.js';

/** Plain JSON object (not an array). */
export type JsonObject = Record<string, unknown>;

/**
 * The device shadow (AWS IoT device shadow / Azure twin): what the device reported, what an app
 * desires, the difference, a version that grows with every accepted report, and the time each leaf
 * was last set. `timestamps` are keyed by JSON pointer (RFC 6901) so that they stay a flat map of
 * plain field names in MongoDB. `desired` is written by command-dispatch; this capability only keeps it.
 */
export interface Shadow {
  deviceId: string;
  reported: JsonObject;
  desired: JsonObject;
  delta: JsonObject;
  version: number;
  timestamps: { reported: Record<string, number>; desired: Record<string, number> };
  updatedAt: string | null;
}

export function emptyShadow(deviceId: string): Shadow {
  return { deviceId, reported: {}, desired: {}, delta: {}, version: 0, timestamps: { reported: {}, desired: {} }, updatedAt: null };
}

export interface StateLimits {
  maxBytes: number;
  maxDepth: number;
}

const isObject = (value: unknown): value is JsonObject => typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Refuses keys that MongoDB cannot store as field names (`$` operators, `.` paths) and nesting deeper
 * than the limit, at any depth, arrays included.
 */
export function checkStatePatch(patch: unknown, limits: StateLimits): asserts patch is JsonObject {
  if (!isObject(patch)) {
    throw new InvalidInputError('a state report is a JSON object', [{ path: '', code: 'invalid_type', message: 'expected an object' }], 'invalid_state');
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
  if (issues.length > 0) throw new InvalidInputError('the state report has keys or nesting that cannot be stored', issues, 'invalid_state');
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

/** Updates per-leaf timestamps for a merge patch: set leaves get `at`, removed subtrees lose theirs. */
export function touchTimestamps(timestamps: Record<string, number>, patch: JsonObject, at: number, base = ''): Record<string, number> {
  const out = base === '' ? { ...timestamps } : timestamps;
  for (const [key, value] of Object.entries(patch)) {
    const pointer = `${base}/${escapePointer(key)}`;
    // Whatever was under this key before is replaced or removed, unless both sides are objects.
    if (!isObject(value)) for (const existing of Object.keys(out)) if (existing === pointer || existing.startsWith(`${pointer}/`)) delete out[existing];
    if (value === null) continue;
    if (isObject(value)) {
      delete out[pointer];
      touchTimestamps(out, value, at, pointer);
    } else out[pointer] = at;
  }
  return out;
}

/** What the device still has to do: desired values that differ from the reported ones (AWS `delta`). */
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

/** The shadow after one accepted report; refuses a result larger than the limit (400, not stored). */
export function applyReport(shadow: Shadow, patch: JsonObject, at: number, limits: StateLimits): Shadow {
  const reported = mergePatch(shadow.reported, patch) as JsonObject;
  const bytes = Buffer.byteLength(JSON.stringify(reported));
  if (bytes > limits.maxBytes) {
    throw new InvalidInputError(
      `the reported state would be ${bytes} bytes, the limit is ${limits.maxBytes}`,
      [{ path: '', code: 'too_big', message: `at most ${limits.maxBytes} bytes` }],
      'shadow_too_large',
    );
  }
  return {
    ...shadow,
    reported,
    delta: computeDelta(shadow.desired, reported),
    version: shadow.version + 1,
    timestamps: { ...shadow.timestamps, reported: touchTimestamps(shadow.timestamps.reported, patch, at) },
    updatedAt: new Date(at).toISOString(),
  };
}
