import { createHash } from 'node:crypto';
import { z } from 'zod';
import { type ApiKeyLookup, apiKeyStatus } from './api-key-store.js';
import { ForbiddenError, UnauthorizedError } from './errors.js';
import type { HttpRequest, Route } from './function-app.js';
import { DEFAULT_SCRYPT_N, generateSecret, hashSecret, verifySecret } from './secrets.js';
import { createTtlCache } from './ttl-cache.js';

/**
 * App API keys for every HTTP endpoint of every function.
 *
 * - Presented as `Authorization: Bearer kiot_<keyId>_<secret>` (RFC 6750 §2.1). The key id has no `_`, so
 *   the first two `_` split the key; the secret is base64url and may contain `_`.
 * - Two kinds, verified alike. Bootstrap keys: env `API_KEYS` from the Secret, a JSON array
 *   `[{"id","hash","scopes":[…]}]` where `hash` is `hashSecret(secret)` (mint one with
 *   `node dist/device-registry.js mint-api-key --id ID --scopes '*'`), for the first login; changed only by a
 *   redeploy. Managed keys: created, listed and revoked through the `api-keys` function, stored as hashes in
 *   MongoDB (shared/api-key-store.ts), with expiry and last-used time. No key at all: every route answers 401.
 * - Scopes: `devices:read`, `devices:write`, `provisioning:write`, `commands:write`, `telemetry:read`,
 *   `reports:read`, `deadletters:read`, `deadletters:write`, `keys:read`, `keys:write`, `broker:auth` (the
 *   broker's HTTP auth hooks); `resource:*` grants every action on a resource, `*` grants everything (admin).
 * - A route's `scope` says what it needs. A route without `scope` still needs a valid key (any scope); a route
 *   whose scope is `PUBLIC_SCOPE` needs none (`/openapi.json`). `/healthz` and `/metrics` never reach here.
 */
export const PUBLIC_SCOPE = 'public';

/** Any key's id: a bootstrap key's (the Secret's) or a managed one's (16 hex digits). */
export const anyKeyIdSchema = z.string().regex(/^[A-Za-z0-9-]{1,32}$/, 'use 1-32 of A-Z a-z 0-9 -');
export const scopeSchema = z
  .string()
  .regex(/^(\*|[a-z]+:(\*|[a-z]+))$/, 'a scope is `resource:action`, `resource:*` or `*`');

export const apiKeyEntrySchema = z
  .object({ id: anyKeyIdSchema, hash: z.string().startsWith('scrypt$'), scopes: z.array(scopeSchema).min(1) })
  .strict();
export type ApiKeyEntry = z.infer<typeof apiKeyEntrySchema>;

/** `API_KEYS` as an env string: JSON array of entries, ids unique. */
export const apiKeysSchema = z
  .string()
  .default('[]')
  .transform((text, ctx) => {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      ctx.addIssue({ code: 'custom', message: 'API_KEYS must be a JSON array' });
      return z.NEVER;
    }
  })
  .pipe(
    z
      .array(apiKeyEntrySchema)
      .refine((keys) => new Set(keys.map((k) => k.id)).size === keys.length, 'API key ids must be unique'),
  );

/** Field group for config schemas (`baseConfigSchema.extend({ ...apiKeyFields })`). */
export const apiKeyFields = {
  /** The bootstrap keys (the first login; `mint-api-key`), from the Secret. Every other key is managed. */
  API_KEYS: apiKeysSchema,
  /** The bound on how long a revoked managed key still works on an instance that verified it before. */
  API_KEY_REVOCATION_SECONDS: z.coerce.number().int().min(0).max(300).default(5),
};

export interface Principal {
  keyId: string;
  scopes: string[];
  /** Where the key is defined: `API_KEYS` in the Secret (bootstrap), or the `api_keys` collection. */
  source: 'bootstrap' | 'managed';
}

/** Splits `kiot_<keyId>_<secret>`; `undefined` when the string is not shaped like a key. */
export function parsePresentedKey(key: string): { keyId: string; secret: string } | undefined {
  const match = /^kiot_([A-Za-z0-9-]{1,32})_([A-Za-z0-9_-]{22,128})$/.exec(key);
  return match ? { keyId: match[1]!, secret: match[2]! } : undefined;
}

/** The bearer token of an `Authorization` header (scheme case-insensitive, RFC 7235 §2.1). */
export function bearerToken(headers: Record<string, string>): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(headers.authorization ?? '');
  return match?.[1];
}

/** Whether granted scopes cover `needed`: exact, `resource:*`, or `*`. */
export function scopeAllows(granted: readonly string[], needed: string): boolean {
  const resource = needed.split(':')[0];
  return granted.some((scope) => scope === '*' || scope === needed || scope === `${resource}:*`);
}

/** A new key: the plaintext (shown once) and the entry to put into `API_KEYS`. */
export async function mintApiKey(id: string, scopes: string[]): Promise<{ key: string; entry: ApiKeyEntry }> {
  const secret = generateSecret(32);
  const entry = apiKeyEntrySchema.parse({ id, scopes, hash: await hashSecret(secret, { N: DEFAULT_SCRYPT_N }) });
  return { key: `kiot_${id}_${secret}`, entry };
}

export interface AuthorizerOptions {
  /** Managed keys (shared/api-key-store.ts); without it only the bootstrap keys of `API_KEYS` work. */
  lookup?: ApiKeyLookup;
  /**
   * How long a managed key's record (scopes, expiry, revocation) is trusted before it is read again: the
   * bound within which a revocation reaches every instance (`API_KEY_REVOCATION_SECONDS`). Expiry is checked
   * against the clock on every request.
   */
  recordTtlMs?: number;
  /** How long a verified (or refused) secret is remembered, so that scrypt runs once per key, not per request. */
  secretTtlMs?: number;
  /** `lastUsedAt` is written at most this often per key and instance. */
  touchIntervalMs?: number;
  now?: () => number;
  /** A failed `lastUsedAt` write: logged by the caller, never a refusal of the request. */
  onTouchError?: (error: unknown) => void;
}

export type Authorizer = (request: HttpRequest, route: Route) => Promise<Principal | undefined>;

interface KeyRecord {
  hash: string;
  scopes: string[];
  source: Principal['source'];
  expiresAt?: Date;
  revokedAt?: Date;
}

/**
 * Authenticates a presented key to its principal, or throws 401 (RFC 6750 §3.1 `invalid_token`: unknown,
 * wrong secret, expired, revoked). Bootstrap keys first, then the store; three bounded LRU caches keep the
 * store and scrypt off the hot path: records for `recordTtlMs` (a missing id too), secret checks for
 * `secretTtlMs` under the sha256 of the presented key (a wrong secret too, so hammering a known id with bad
 * secrets costs one scrypt per TTL), last-used marks per `touchIntervalMs`.
 */
export function createKeyVerifier(bootstrap: readonly ApiKeyEntry[], options: AuthorizerOptions = {}) {
  const byId = new Map(bootstrap.map((entry) => [entry.id, entry]));
  const now = options.now ?? Date.now;
  const records = createTtlCache<KeyRecord | undefined>({
    ttlMs: options.recordTtlMs ?? 5_000,
    maxEntries: 10_000,
    now,
  });
  const secrets = createTtlCache<boolean>({ ttlMs: options.secretTtlMs ?? 600_000, maxEntries: 10_000, now });
  const touched = createTtlCache<true>({ ttlMs: options.touchIntervalMs ?? 60_000, maxEntries: 10_000, now });

  async function recordOf(keyId: string): Promise<KeyRecord | undefined> {
    const entry = byId.get(keyId);
    if (entry) return { hash: entry.hash, scopes: entry.scopes, source: 'bootstrap' };
    if (!options.lookup) return undefined;
    const cached = records.get(keyId);
    if (cached) return cached.value;
    const doc = await options.lookup.find(keyId);
    const record: KeyRecord | undefined = doc && {
      hash: doc.hash,
      scopes: doc.scopes,
      source: 'managed',
      ...(doc.expiresAt ? { expiresAt: doc.expiresAt } : {}),
      ...(doc.revokedAt ? { revokedAt: doc.revokedAt } : {}),
    };
    records.set(keyId, record);
    return record;
  }

  return async function verify(presented: string | undefined): Promise<Principal> {
    if (!presented) throw new UnauthorizedError();
    const parsed = parsePresentedKey(presented);
    const record = parsed && (await recordOf(parsed.keyId));
    if (!parsed || !record) throw new UnauthorizedError('the API key is not valid');
    const digest = createHash('sha256').update(presented).digest('base64url');
    let matches = secrets.get(digest)?.value;
    if (matches === undefined) {
      matches = await verifySecret(parsed.secret, record.hash);
      secrets.set(digest, matches);
    }
    if (!matches) throw new UnauthorizedError('the API key is not valid');
    const status = apiKeyStatus(record, now());
    if (status !== 'active') throw new UnauthorizedError(`the API key is ${status}`);
    if (record.source === 'managed' && !touched.get(parsed.keyId)) {
      touched.set(parsed.keyId, true);
      options.lookup?.touch(parsed.keyId, new Date(now())).catch((error: unknown) => options.onTouchError?.(error));
    }
    return { keyId: parsed.keyId, scopes: record.scopes, source: record.source };
  };
}

/**
 * The `authorize` hook of `createFunctionApp`: 401 without a valid key, 403 without the route's scope; the
 * principal it resolves with is logged with every request (function-app.ts).
 */
export function createApiKeyAuthorizer(keys: readonly ApiKeyEntry[], options: AuthorizerOptions = {}): Authorizer {
  const verify = createKeyVerifier(keys, options);
  return async (request, route) => {
    if (route.scope === PUBLIC_SCOPE) return undefined;
    const principal = await verify(bearerToken(request.headers));
    if (route.scope !== undefined && !scopeAllows(principal.scopes, route.scope)) {
      throw new ForbiddenError(`the API key lacks the scope ${route.scope}`, { required: route.scope });
    }
    return principal;
  };
}
