import type { Filter } from 'mongodb';
import { type ApiKeyDocument, apiKeysCollection } from '../../shared/api-key-store.js';
import { insertIfAbsent, type MongoHandle, withMongo } from '../../shared/mongo.js';
import type { ListQuery } from './schema.js';

export interface KeyRepository {
  /** False when the id is taken (a 64-bit collision: the caller draws another). */
  insert(doc: ApiKeyDocument): Promise<boolean>;
  get(id: string): Promise<ApiKeyDocument | undefined>;
  /** Newest first; `status` is resolved against `now`. One more than `limit` tells whether a next page exists. */
  list(query: ListQuery, now: Date): Promise<ApiKeyDocument[]>;
  /** Sets `revokedAt`/`revokedBy` unless already revoked; the document as it is afterwards. */
  revoke(id: string, by: string, at: Date): Promise<ApiKeyDocument | undefined>;
  ensureIndexes(): Promise<void>;
}

/** `<createdAt ms>.<id>`: the position after which the next page starts. */
export const cursorOf = (doc: ApiKeyDocument) => `${doc.createdAt.getTime()}.${doc._id}`;

export function createKeyRepository(mongo: MongoHandle): KeyRepository {
  const collection = () => apiKeysCollection(mongo);
  return {
    insert: (doc) => withMongo(async () => insertIfAbsent(await collection(), doc)),
    get: (id) => withMongo(async () => (await (await collection()).findOne({ _id: id })) ?? undefined),
    list: (query, now) =>
      withMongo(async () => {
        const and: Filter<ApiKeyDocument>[] = [];
        if (query.status === 'revoked') and.push({ revokedAt: { $exists: true } });
        if (query.status === 'active')
          and.push(
            { revokedAt: { $exists: false } },
            { $or: [{ expiresAt: { $exists: false } }, { expiresAt: { $gt: now } }] },
          );
        if (query.status === 'expired') and.push({ revokedAt: { $exists: false } }, { expiresAt: { $lte: now } });
        if (query.cursor) {
          const [ms, id] = query.cursor.split('.') as [string, string];
          const at = new Date(Number(ms));
          and.push({ $or: [{ createdAt: { $lt: at } }, { createdAt: at, _id: { $lt: id } }] });
        }
        return (await collection())
          .find(and.length > 0 ? { $and: and } : {})
          .sort({ createdAt: -1, _id: -1 })
          .limit(query.limit + 1)
          .toArray();
      }),
    revoke: (id, by, at) =>
      withMongo(async () => {
        const keys = await collection();
        await keys.updateOne({ _id: id, revokedAt: { $exists: false } }, { $set: { revokedAt: at, revokedBy: by } });
        return (await keys.findOne({ _id: id })) ?? undefined;
      }),
    ensureIndexes: () =>
      withMongo(async () => {
        await (await collection()).createIndex({ createdAt: -1, _id: -1 });
      }),
  };
}
