import { describe, expect, it } from 'vitest';
import type { ApiKeyDocument, ApiKeyLookup } from '../../../shared/api-key-store.js';
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
const statusOf = async (promise: Promise<unknown>) =>
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
    // Not 0: lru-cache reads an entry stored at time 0 as one without a start, which never goes stale.
    let now = 1_000_000;
    const { key, entry } = await mintApiKey('cached', ['devices:read']);
    const authorize = createApiKeyAuthorizer([entry], { secretTtlMs: 1_000, now: () => now });
    expect(await statusOf(authorize(request(`Bearer ${key}`), route('devices:read')))).toBe(200);
    // Spoil the stored hash: within the TTL the cached verdict stands (no scrypt), after it the key fails.
    entry.hash = 'scrypt$4096$8$1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA';
    now = 1_000_999;
    expect(await statusOf(authorize(request(`Bearer ${key}`), route('devices:read')))).toBe(200);
    now = 1_001_001;
    expect(await statusOf(authorize(request(`Bearer ${key}`), route('devices:read')))).toBe(401);
  });

  describe('managed keys (a store behind the bootstrap keys)', () => {
    async function managed(overrides: Partial<ApiKeyDocument> = {}) {
      const { key, entry } = await mintApiKey('0123456789abcdef', ['devices:read']);
      const doc: ApiKeyDocument = {
        _id: entry.id,
        name: 'ci',
        hash: entry.hash,
        scopes: entry.scopes,
        createdAt: new Date(0),
        createdBy: 'admin',
        ...overrides,
      };
      const reads: string[] = [];
      const touches: Date[] = [];
      const lookup: ApiKeyLookup = {
        find: async (id) => {
          reads.push(id);
          return id === doc._id ? { ...doc } : undefined;
        },
        touch: async (_id, at) => {
          touches.push(at);
        },
      };
      return { key, doc, reads, touches, lookup };
    }

    it('verifies a stored key, refuses it once expired, and marks its last use at most once a minute', async () => {
      let now = 1_000;
      const { key, touches, lookup } = await managed({ expiresAt: new Date(100_000) });
      const authorize = createApiKeyAuthorizer([], { lookup, now: () => now });
      expect(await authorize(request(`Bearer ${key}`), route('devices:read'))).toEqual({
        keyId: '0123456789abcdef',
        scopes: ['devices:read'],
        source: 'managed',
      });
      now = 30_000;
      expect(await statusOf(authorize(request(`Bearer ${key}`), route('devices:read')))).toBe(200);
      now = 62_000;
      expect(await statusOf(authorize(request(`Bearer ${key}`), route('devices:read')))).toBe(200);
      expect(touches.map((at) => at.getTime())).toEqual([1_000, 62_000]);
      // Expiry is read from the cached record on every request: exact, not within a bound.
      now = 100_000;
      expect(await statusOf(authorize(request(`Bearer ${key}`), route('devices:read')))).toBe(401);
    });

    it('refuses a revoked key once its cached record is older than the revocation bound', async () => {
      let now = 1_000_000;
      const { key, doc, reads, lookup } = await managed();
      const authorize = createApiKeyAuthorizer([], { lookup, recordTtlMs: 5_000, now: () => now });
      expect(await statusOf(authorize(request(`Bearer ${key}`), route('devices:read')))).toBe(200);
      doc.revokedAt = new Date(1);
      now = 1_004_999;
      expect(await statusOf(authorize(request(`Bearer ${key}`), route('devices:read')))).toBe(200);
      now = 1_005_001;
      let refusal: unknown;
      await authorize(request(`Bearer ${key}`), route('devices:read')).catch((error: unknown) => (refusal = error));
      expect(toProblem(refusal)).toMatchObject({ status: 401, body: { error: { message: 'the API key is revoked' } } });
      expect(reads).toHaveLength(2);
    });

    it('remembers an unknown id for the bound too, and never asks the store for a bootstrap key', async () => {
      const { reads, lookup } = await managed();
      const bootstrap = await mintApiKey('boot', ['*']);
      const authorize = createApiKeyAuthorizer([bootstrap.entry], { lookup, now: () => 1_000_000 });
      const ghost = `Bearer kiot_feedfeedfeedfeed_${'a'.repeat(43)}`;
      expect(await statusOf(authorize(request(ghost), route()))).toBe(401);
      expect(await statusOf(authorize(request(ghost), route()))).toBe(401);
      expect(await authorize(request(`Bearer ${bootstrap.key}`), route())).toMatchObject({ source: 'bootstrap' });
      expect(reads).toEqual(['feedfeedfeedfeed']);
    });
  });
});
