import { describe, expect, it } from 'vitest';
import {
  apiKeysSchema,
  bearerToken,
  createApiKeyAuthorizer,
  mintApiKey,
  PUBLIC_SCOPE,
  parsePresentedKey,
  scopeAllows,
} from '../../../shared/api-keys.js';
import { toProblem } from '../../../shared/errors.js';
import type { HttpRequest, Route } from '../../../shared/function-app.js';

const request = (authorization?: string): HttpRequest => ({
  method: 'GET',
  path: '/devices',
  params: {},
  query: new URLSearchParams(),
  headers: authorization ? { authorization } : {},
  body: undefined,
  rawBody: Buffer.alloc(0),
});
const route = (scope?: string): Route => ({
  method: 'GET',
  path: '/devices',
  scope,
  handle: async () => ({ status: 200 }),
});
const statusOf = async (promise: Promise<void>) =>
  promise.then(
    () => 200,
    (error: unknown) => toProblem(error).status,
  );

describe('API keys', () => {
  it('parses kiot_<id>_<secret> keys, secrets may hold underscores', () => {
    expect(parsePresentedKey('kiot_ops-1_abc_def-ghijklmnopqrstuvwxyz0')).toEqual({
      keyId: 'ops-1',
      secret: 'abc_def-ghijklmnopqrstuvwxyz0',
    });
    expect(parsePresentedKey('kiot_ops_short')).toBeUndefined();
    expect(parsePresentedKey('other_ops_abcdefghijklmnopqrstuvwxyz')).toBeUndefined();
    expect(bearerToken({ authorization: 'bearer abc' })).toBe('abc');
    expect(bearerToken({ authorization: 'Basic abc' })).toBeUndefined();
  });

  it('validates API_KEYS as a JSON array with unique ids', async () => {
    const { entry } = await mintApiKey('ops', ['devices:read']);
    expect(apiKeysSchema.parse(JSON.stringify([entry]))).toEqual([entry]);
    expect(apiKeysSchema.parse(undefined)).toEqual([]);
    expect(apiKeysSchema.safeParse('not json').success).toBe(false);
    expect(apiKeysSchema.safeParse(JSON.stringify([entry, entry])).success).toBe(false);
    expect(apiKeysSchema.safeParse(JSON.stringify([{ ...entry, scopes: ['Devices read'] }])).success).toBe(false);
    expect(apiKeysSchema.safeParse(JSON.stringify([{ ...entry, extra: 1 }])).success).toBe(false);
  });

  it('matches scopes exactly, by resource wildcard and by *', () => {
    expect(scopeAllows(['devices:read'], 'devices:read')).toBe(true);
    expect(scopeAllows(['devices:read'], 'devices:write')).toBe(false);
    expect(scopeAllows(['devices:*'], 'devices:write')).toBe(true);
    expect(scopeAllows(['devices:*'], 'reports:read')).toBe(false);
    expect(scopeAllows(['*'], 'reports:read')).toBe(true);
  });

  it('answers 401 without a valid key, 403 without the scope, passes public routes', async () => {
    const reader = await mintApiKey('reader', ['devices:read']);
    const admin = await mintApiKey('admin', ['*']);
    const authorize = createApiKeyAuthorizer([reader.entry, admin.entry]);
    expect(await statusOf(authorize(request(), route('devices:read')))).toBe(401);
    expect(await statusOf(authorize(request('Bearer nonsense'), route('devices:read')))).toBe(401);
    expect(await statusOf(authorize(request(`Bearer ${reader.key}x`), route('devices:read')))).toBe(401);
    expect(await statusOf(authorize(request(`Bearer kiot_ghost_${'a'.repeat(43)}`), route()))).toBe(401);
    expect(await statusOf(authorize(request(`Bearer ${reader.key}`), route('devices:read')))).toBe(200);
    expect(await statusOf(authorize(request(`Bearer ${reader.key}`), route('devices:write')))).toBe(403);
    expect(await statusOf(authorize(request(`Bearer ${reader.key}`), route()))).toBe(200);
    expect(await statusOf(authorize(request(`Bearer ${admin.key}`), route('devices:write')))).toBe(200);
    expect(await statusOf(authorize(request(), route(PUBLIC_SCOPE)))).toBe(200);
  });

  it('caches a verified key for the TTL, then verifies again', async () => {
    let now = 0;
    const { key, entry } = await mintApiKey('cached', ['devices:read']);
    const authorize = createApiKeyAuthorizer([entry], { cacheTtlMs: 1_000, now: () => now });
    expect(await statusOf(authorize(request(`Bearer ${key}`), route('devices:read')))).toBe(200);
    // Spoil the stored hash: within the TTL the cached verdict stands (no scrypt), after it the key fails.
    entry.hash = 'scrypt$4096$8$1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA';
    now = 999;
    expect(await statusOf(authorize(request(`Bearer ${key}`), route('devices:read')))).toBe(200);
    now = 1_001;
    expect(await statusOf(authorize(request(`Bearer ${key}`), route('devices:read')))).toBe(401);
  });
});
