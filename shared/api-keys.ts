import { createHash } from 'node:crypto';
import { z } from 'zod';
import { ForbiddenError, UnauthorizedError } from './errors.js';
import type { HttpRequest, Route } from './function-app.js';
import { DEFAULT_SCRYPT_N, generateSecret, hashSecret, verifySecret } from './secrets.js';

/**
 * App API keys for every HTTP endpoint of every function.
 *
 * - Presented as `Authorization: Bearer kiot_<keyId>_<secret>` (RFC 6750 §2.1). The key id has no `_`, so
 *   the first two `_` split the key; the secret is base64url and may contain `_`.
 * - Configured through env `API_KEYS`: a JSON array `[{"id","hash","scopes":[…]}]` where `hash` is
 *   `hashSecret(secret)` (mint one with `node dist/device-registry.js mint-api-key --id ID --scopes a,b`).
 *   Only hashes live in the Secret; an unset `API_KEYS` means no key works (every route answers 401).
 * - Scopes: `devices:read`, `devices:write`, `provisioning:write`, `commands:write`, `telemetry:read`,
 *   `reports:read`, `broker:auth` (the broker's HTTP auth hooks); `resource:*` grants every action on a
 *   resource, `*` grants everything (admin).
 * - A route's `scope` says what it needs. A route without `scope` still needs a valid key (any scope); a route
 *   whose scope is `PUBLIC_SCOPE` needs none (`/openapi.json`). `/healthz` and `/metrics` never reach here.
 * - scrypt on every request would cost milliseconds of CPU each, so a verified key is cached in memory under
 *   the sha256 of the presented key for `cacheTtlMs`; a wrong secret is cached as a failure as well, so a
 *   client hammering a known key id with a bad secret costs one scrypt per TTL.
 */
export const PUBLIC_SCOPE = 'public';

const keyIdSchema = z.string().regex(/^[A-Za-z0-9-]{1,32}$/, 'use 1-32 of A-Z a-z 0-9 -');
const scopeSchema = z.string().regex(/^(\*|[a-z]+:(\*|[a-z]+))$/, 'a scope is `resource:action`, `resource:*` or `*`');

export const apiKeyEntrySchema = z
  .object({ id: keyIdSchema, hash: z.string().startsWith('scrypt$'), scopes: z.array(scopeSchema).min(1) })
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
export const apiKeyFields = { API_KEYS: apiKeysSchema };

export interface Principal {
  keyId: string;
  scopes: string[];
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
  cacheTtlMs?: number;
  now?: () => number;
}

export type Authorizer = (request: HttpRequest, route: Route) => Promise<void>;

/** Authenticates a presented key to its principal (cached), or throws 401. */
export function createKeyVerifier(keys: readonly ApiKeyEntry[], options: AuthorizerOptions = {}) {
  const byId = new Map(keys.map((entry) => [entry.id, entry]));
  const ttl = options.cacheTtlMs ?? 60_000;
  const now = options.now ?? Date.now;
  const cache = new Map<string, { at: number; principal: Principal | undefined }>();

  return async function verify(presented: string | undefined): Promise<Principal> {
    if (!presented) throw new UnauthorizedError();
    const parsed = parsePresentedKey(presented);
    const entry = parsed && byId.get(parsed.keyId);
    if (!parsed || !entry) throw new UnauthorizedError('the API key is not valid');
    const digest = createHash('sha256').update(presented).digest('base64url');
    const hit = cache.get(digest);
    let principal: Principal | undefined;
    if (hit && now() - hit.at < ttl) {
      principal = hit.principal;
    } else {
      principal = (await verifySecret(parsed.secret, entry.hash))
        ? { keyId: entry.id, scopes: entry.scopes }
        : undefined;
      if (cache.size >= 10_000) cache.clear();
      cache.set(digest, { at: now(), principal });
    }
    if (!principal) throw new UnauthorizedError('the API key is not valid');
    return principal;
  };
}

/** The `authorize` hook of `createFunctionApp`: 401 without a valid key, 403 without the route's scope. */
export function createApiKeyAuthorizer(keys: readonly ApiKeyEntry[], options: AuthorizerOptions = {}): Authorizer {
  const verify = createKeyVerifier(keys, options);
  return async (request, route) => {
    if (route.scope === PUBLIC_SCOPE) return;
    const principal = await verify(bearerToken(request.headers));
    if (route.scope !== undefined && !scopeAllows(principal.scopes, route.scope)) {
      throw new ForbiddenError(`the API key lacks the scope ${route.scope}`, { required: route.scope });
    }
  };
}
