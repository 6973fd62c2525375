import type { Collection } from 'mongodb';
import { insertIfAbsent, type MongoHandle, withMongo } from '../../shared/mongo.js';

export const TOKENS_COLLECTION = 'provisioning_tokens';
export const REQUESTS_COLLECTION = 'provisioning_requests';

/** A fleet claim token: only its hash is stored (shared/secrets.ts). */
export interface TokenDocument {
  _id: string;
  hash: string;
  expiresAt: Date;
  maxUses: number;
  uses: number;
  /** maxUses − uses, kept beside it so the guard is a plain query (`$expr` is not on every compatible server). */
  remaining: number;
  type?: string;
  tags: string[];
  createdAt: Date;
}

/**
 * What became of one provisioning request id: the device it created and, once answered, the published reply
 * (its credential already encrypted to the device's reply key) sealed again with PROVISIONING_REPLY_KEY, so a
 * redelivery gets the same answer and no plaintext secret is ever stored.
 */
export interface RequestDocument {
  _id: string;
  tokenId: string;
  deviceId: string;
  /** sha256 of the request's reply key: only a request with the same key may replay or resume this id. */
  replyKeyDigest: string;
  state: 'pending' | 'answered';
  reply?: string;
  createdAt: Date;
  /** After this the request id is forgotten (swept on read: not every server enforces TTL indexes). */
  expiresAt: Date;
}

export interface ProvisioningRepository {
  insertToken(token: TokenDocument): Promise<void>;
  findToken(id: string): Promise<TokenDocument | undefined>;
  /** Counts one use, atomically and only while uses < maxUses and unexpired; `false` when none is left. */
  consumeToken(id: string, now: Date): Promise<boolean>;
  /** Gives a use back (the registration it was taken for did not happen). */
  releaseToken(id: string): Promise<void>;
  /** `false` when the request id is already known. */
  insertRequest(request: RequestDocument): Promise<boolean>;
  findRequest(id: string, now: Date): Promise<RequestDocument | undefined>;
  answerRequest(id: string, reply: string): Promise<void>;
  removeRequest(id: string): Promise<void>;
}

export function createProvisioningRepository(mongo: MongoHandle): ProvisioningRepository {
  const tokens = async (): Promise<Collection<TokenDocument>> =>
    (await mongo.db()).collection<TokenDocument>(TOKENS_COLLECTION);
  const requests = async (): Promise<Collection<RequestDocument>> =>
    (await mongo.db()).collection<RequestDocument>(REQUESTS_COLLECTION);

  return {
    insertToken: (token) =>
      withMongo(async () => {
        await (await tokens()).insertOne(token);
      }),
    findToken: (id) => withMongo(async () => (await (await tokens()).findOne({ _id: id })) ?? undefined),
    consumeToken: (id, now) =>
      withMongo(async () => {
        // One atomic document update (the guard and the $inc together), so concurrent claims never exceed maxUses.
        const updated = await (await tokens()).findOneAndUpdate(
          { _id: id, expiresAt: { $gt: now }, remaining: { $gt: 0 } },
          { $inc: { uses: 1, remaining: -1 } },
          { returnDocument: 'after' },
        );
        return updated !== null;
      }),
    releaseToken: (id) =>
      withMongo(async () => {
        await (await tokens()).updateOne({ _id: id, uses: { $gt: 0 } }, { $inc: { uses: -1, remaining: 1 } });
      }),
    insertRequest: (request) => withMongo(async () => insertIfAbsent(await requests(), request)),
    findRequest: (id, now) =>
      withMongo(async () => {
        const collection = await requests();
        const found = await collection.findOne({ _id: id });
        if (found && found.expiresAt <= now) {
          await collection.deleteOne({ _id: id, expiresAt: found.expiresAt });
          return undefined;
        }
        return found ?? undefined;
      }),
    answerRequest: (id, reply) =>
      withMongo(async () => {
        await (await requests()).updateOne({ _id: id }, { $set: { state: 'answered', reply } });
      }),
    removeRequest: (id) =>
      withMongo(async () => {
        await (await requests()).deleteOne({ _id: id });
      }),
  };
}
