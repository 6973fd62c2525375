import { createHash } from 'node:crypto';
import { deleteKeys, type RedisHandle, withRedis } from '../../shared/redis.js';

export type CachedStatus = 'active' | 'disabled' | 'missing';

/**
 * Broker hook answers cached in Redis, one hash per device (`<prefix>auth:<id>`): field `s` is the device
 * status, fields `p:<sha256 of clientid+password>` a password verdict. One key per device lets a rotate,
 * disable or delete invalidate everything about it with one DEL. A fast hash of the presented password is
 * safe here: the secrets are ≥128 random bits, and the key holds only a digest.
 */
export interface AuthCache {
  lookup(id: string, passwordDigest?: string): Promise<{ status?: CachedStatus; verdict?: boolean }>;
  /** Stores the status (and a verdict) freshly read from MongoDB, for the TTL. */
  store(id: string, status: CachedStatus, verdict?: { digest: string; allowed: boolean }): Promise<void>;
  invalidate(ids: string[]): Promise<void>;
}

export function passwordDigest(clientid: string, password: string): string {
  return createHash('sha256').update(clientid).update('\u0000').update(password).digest('base64url');
}

export function createAuthCache(redis: RedisHandle, options: { prefix: string; ttlSeconds: number }): AuthCache {
  const key = (id: string) => `${options.prefix}auth:${id}`;
  return {
    lookup: (id, digest) =>
      withRedis(async () => {
        const fields = digest === undefined ? ['s'] : ['s', `p:${digest}`];
        const [status, verdict] = await (await redis.client()).hmget(key(id), ...fields);
        return {
          status: (status ?? undefined) as CachedStatus | undefined,
          verdict: verdict === null || verdict === undefined ? undefined : verdict === '1',
        };
      }),
    store: (id, status, verdict) =>
      withRedis(async () => {
        const fields: Record<string, string> = { s: status };
        if (verdict) fields[`p:${verdict.digest}`] = verdict.allowed ? '1' : '0';
        // Every write carries a status just read from MongoDB, so resetting the TTL never prolongs a stale one.
        await (await redis.client()).multi().hset(key(id), fields).expire(key(id), options.ttlSeconds).exec();
      }),
    invalidate: (ids) =>
      withRedis(async () => {
        // Each device's hash is in a slot of its own on a Cluster: one DEL per slot.
        await deleteKeys(await redis.client(), ids.map(key));
      }),
  };
}
