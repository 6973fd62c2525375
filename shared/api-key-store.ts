import type { Collection } from 'mongodb';
import { type MongoHandle, withMongo } from './mongo.js';

/**
 * Managed API keys in MongoDB: the contract between the `api-keys` capability, which creates and revokes
 * them, and every function, which verifies them (shared/api-keys.ts). Only the scrypt hash of a key's secret
 * is stored; the key itself is shown once, when it is created.
 */
export const API_KEYS_COLLECTION = 'api_keys';

export interface ApiKeyDocument {
  /** The key id: the `<keyId>` of `kiot_<keyId>_<secret>`, random hex (never a bootstrap key's id). */
  _id: string;
  name: string;
  /** `hashSecret(secret)` (shared/secrets.ts). */
  hash: string;
  scopes: string[];
  createdAt: Date;
  /** The key id that created it. */
  createdBy: string;
  expiresAt?: Date;
  revokedAt?: Date;
  revokedBy?: string;
  /** Refreshed at most once a minute per instance (`touch`), so it is the last use to the minute. */
  lastUsedAt?: Date;
}

export type ApiKeyStatus = 'active' | 'expired' | 'revoked';

export function apiKeyStatus(doc: Pick<ApiKeyDocument, 'expiresAt' | 'revokedAt'>, now: number): ApiKeyStatus {
  if (doc.revokedAt) return 'revoked';
  if (doc.expiresAt && doc.expiresAt.getTime() <= now) return 'expired';
  return 'active';
}

/** What a verifier needs of the store: one key by id, and a last-used mark. */
export interface ApiKeyLookup {
  find(keyId: string): Promise<ApiKeyDocument | undefined>;
  /** Moves `lastUsedAt` forward to `at` (never back: instances race). */
  touch(keyId: string, at: Date): Promise<void>;
}

export const apiKeysCollection = async (mongo: MongoHandle): Promise<Collection<ApiKeyDocument>> =>
  (await mongo.db()).collection<ApiKeyDocument>(API_KEYS_COLLECTION);

export function createApiKeyLookup(mongo: MongoHandle): ApiKeyLookup {
  return {
    find: (keyId) =>
      withMongo(async () => (await (await apiKeysCollection(mongo)).findOne({ _id: keyId })) ?? undefined),
    touch: (keyId, at) =>
      withMongo(async () => {
        await (await apiKeysCollection(mongo)).updateOne({ _id: keyId }, { $max: { lastUsedAt: at } });
      }),
  };
}
