import { randomBytes } from 'node:crypto';
import type { ApiKeyDocument } from '../../shared/api-key-store.js';
import { type Principal, scopeAllows } from '../../shared/api-keys.js';
import { AppError, ConflictError, ForbiddenError, InvalidInputError, NotFoundError } from '../../shared/errors.js';
import type { HandlerContext } from '../../shared/function-app.js';
import { DEFAULT_SCRYPT_N, generateSecret, hashSecret } from '../../shared/secrets.js';
import type { KeyRepository } from './key-repository.js';
import { type CreateKey, type KeyView, MAX_LIFETIME_MS, type SelfView } from './schema.js';
import { keyView } from './view.js';

export interface KeyDeps {
  keys: KeyRepository;
  now(): Date;
  /** The ids of the Secret's bootstrap keys: never drawn for a managed key, never revoked here. */
  bootstrapIds: ReadonlySet<string>;
  newId?(): string;
  hash?(secret: string): Promise<string>;
}

const randomId = () => randomBytes(8).toString('hex');

/**
 * `POST /api-keys`: a new key whose secret exists only in the answer. A caller can hand out only scopes it
 * holds itself (no key mints a key mightier than its maker); an expiry lies in the future, within ten years.
 */
export async function createKey(
  input: CreateKey,
  caller: Principal,
  deps: KeyDeps,
  ctx: HandlerContext,
): Promise<KeyView & { key: string }> {
  // Step 1: no escalation.
  const notGranted = input.scopes.filter((scope) => !scopeAllows(caller.scopes, scope));
  if (notGranted.length > 0) throw new ForbiddenError('a key can only grant scopes its creator holds', { notGranted });

  // Step 2: a sensible lifetime.
  const now = deps.now();
  const expiresAt = input.expiresAt === undefined ? undefined : new Date(input.expiresAt);
  if (expiresAt && (expiresAt.getTime() <= now.getTime() || expiresAt.getTime() - now.getTime() > MAX_LIFETIME_MS)) {
    throw new InvalidInputError('expiresAt must lie in the future, at most ten years ahead', [
      { path: 'expiresAt', code: 'out_of_range', message: 'in the future, at most 3650 days ahead' },
    ]);
  }

  // Step 3: the secret, hashed; only the hash is stored.
  const secret = generateSecret(32);
  const hash = await (deps.hash ?? ((text) => hashSecret(text, { N: DEFAULT_SCRYPT_N })))(secret);

  // Step 4: an id nobody has (a bootstrap id or, once in 2^64, another key's).
  for (let attempt = 0; attempt < 4; attempt += 1) {
    const id = (deps.newId ?? randomId)();
    if (deps.bootstrapIds.has(id)) continue;
    const doc: ApiKeyDocument = {
      _id: id,
      name: input.name,
      hash,
      scopes: input.scopes,
      createdAt: now,
      createdBy: caller.keyId,
      ...(expiresAt ? { expiresAt } : {}),
    };
    if (!(await deps.keys.insert(doc))) continue;
    ctx.logger.info({ keyId: caller.keyId, created: id, scopes: input.scopes }, 'api key created');
    return { ...keyView(doc, now), key: `kiot_${id}_${secret}` };
  }
  throw new ConflictError('no free key id was found; try again', 'key_id_taken');
}

/** `DELETE /api-keys/{id}`: revoked for good (the record stays, for the audit trail); repeating it is harmless. */
export async function revokeKey(id: string, caller: Principal, deps: KeyDeps, ctx: HandlerContext): Promise<KeyView> {
  if (deps.bootstrapIds.has(id)) {
    throw new ConflictError(
      `${id} is a bootstrap key of the Secret (API_KEYS): remove it there and redeploy`,
      'bootstrap_key',
    );
  }
  const now = deps.now();
  const doc = await deps.keys.revoke(id, caller.keyId, now);
  if (!doc) throw new NotFoundError(`no API key ${id}`);
  ctx.logger.info({ keyId: caller.keyId, revoked: id }, 'api key revoked');
  return keyView(doc, now);
}

export async function getKey(id: string, deps: KeyDeps): Promise<KeyView> {
  const doc = await deps.keys.get(id);
  if (!doc) throw new NotFoundError(`no API key ${id}`);
  const view = keyView(doc, deps.now());
  // A revoked key is no longer a resource (404, code revoked); the record stays for the audit: in the problem's details and
  // in `GET /api-keys?status=revoked`.
  if (view.status === 'revoked')
    throw new AppError(
      404,
      'revoked',
      `API key ${id} is revoked: no longer a resource (the record is in details)`,
      view,
    );
  return view;
}

/**
 * `GET /api-keys/self`: what the presented key may do, so that an app (the console) shows only what the key
 * allows. A managed key adds its name and expiry; a bootstrap key has neither.
 */
export async function describeCaller(caller: Principal, deps: KeyDeps): Promise<SelfView> {
  const base = { id: caller.keyId, scopes: caller.scopes, source: caller.source };
  if (caller.source !== 'managed') return { ...base, name: null, expiresAt: null };
  const doc = await deps.keys.get(caller.keyId);
  return { ...base, name: doc?.name ?? null, expiresAt: doc?.expiresAt?.toISOString() ?? null };
}
