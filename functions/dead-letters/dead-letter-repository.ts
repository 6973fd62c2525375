import { createHash } from 'node:crypto';
import type { Collection, Filter } from 'mongodb';
import { InvalidInputError } from '../../shared/errors.js';
import { isDuplicateKey, type MongoHandle, withMongo } from '../../shared/mongo.js';
import type { DeadLetterFilter, DeadLetterStatus } from './schema.js';

export const DEAD_LETTERS_COLLECTION = 'dead_letters';

/** The event as it was delivered, without Knative's error extensions; enough to send it again. */
export interface StoredEvent {
  id: string;
  source: string;
  type: string;
  specversion: string;
  subject?: string;
  time?: string;
  datacontenttype?: string;
  dataschema?: string;
  extensions: Record<string, string | number | boolean>;
  /** `data` as text: JSON, plain text, or base64 (`data_base64`). */
  data?: string;
  dataEncoding?: 'json' | 'text' | 'base64';
}

/** Knative's error extensions (eventing "Dead Letter Sink" docs): where it failed, the status, the answer. */
export interface DeliveryError {
  destination: string | null;
  code: number | null;
  /** `knativeerrordata` as sent (base64 of the subscriber's answer, possibly truncated). */
  data: string | null;
  /** The same, decoded, when it is UTF-8 text. */
  text?: string;
}

export interface ReplayAttempt {
  at: Date;
  to: string;
  status?: number;
  error?: string;
}

export interface DeadLetterDocument {
  /** sha256 of (source, id, knativeerrordest): one record per event and failed destination. */
  _id: string;
  event: StoredEvent;
  error: DeliveryError;
  status: DeadLetterStatus;
  /** How often it arrived: a replay that fails again comes back under the same record. */
  deadLetterCount: number;
  firstDeadLetteredAt: Date;
  lastDeadLetteredAt: Date;
  replayCount: number;
  replayedAt?: Date;
  replayedTo?: string;
  lastReplay?: ReplayAttempt;
}

/**
 * The record's key. The brief keys on the event id and the failed destination; the CloudEvents spec (§3.1.1)
 * makes an id unique only per `source`, so the source is part of it too (two producers' events never merge).
 */
export function deadLetterId(event: Pick<StoredEvent, 'source' | 'id'>, destination: string | null): string {
  return createHash('sha256')
    .update(JSON.stringify([event.source, event.id, destination ?? '']))
    .digest('base64url')
    .slice(0, 32);
}

export interface Page {
  items: DeadLetterDocument[];
  next: string | null;
}

export interface DeadLetterRepository {
  /** Stores an arrival: inserts the first time, or marks an existing record pending again. */
  recordArrival(input: {
    id: string;
    event: StoredEvent;
    error: DeliveryError;
    at: Date;
  }): Promise<{ created: boolean }>;
  get(id: string): Promise<DeadLetterDocument | undefined>;
  list(filter: DeadLetterFilter, page: { limit: number; cursor?: string }): Promise<Page>;
  /**
   * Marks a replay as done, unless the record came back meanwhile (its `deadLetterCount` moved on): then it
   * stays pending, so a failure that raced the replay is never hidden.
   */
  markReplayed(id: string, seenCount: number, attempt: ReplayAttempt): Promise<boolean>;
  recordReplayFailure(id: string, attempt: ReplayAttempt): Promise<void>;
  /** How many wait for a replay, and the devices (subjects) whose events were refused since `since`. */
  summary(since: Date, maxDevices: number): Promise<DeadLetterSummary>;
}

/** Devices whose messages were refused recently: what a fleet overview calls failing devices. */
export interface DeadLetterSummary {
  pending: number;
  failingDevices: {
    deviceId: string;
    /** Dead-letter records of this device that arrived (again) since `since`. */
    refusals: number;
    lastAt: Date;
    lastType: string;
    lastError: DeliveryError;
  }[];
}

interface Cursor {
  at: number;
  id: string;
}

function encodeCursor(doc: DeadLetterDocument): string {
  return Buffer.from(JSON.stringify({ at: doc.firstDeadLetteredAt.getTime(), id: doc._id } satisfies Cursor)).toString(
    'base64url',
  );
}

function decodeCursor(text: string): Cursor {
  try {
    const value = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as Partial<Cursor>;
    if (typeof value.at === 'number' && typeof value.id === 'string') return { at: value.at, id: value.id };
  } catch {
    // fall through
  }
  throw new InvalidInputError('the cursor is not valid', undefined, 'invalid_cursor');
}

function toQuery(filter: DeadLetterFilter): Filter<DeadLetterDocument> {
  const query: Filter<DeadLetterDocument> = {};
  if (filter.status) query.status = filter.status;
  if (filter.type) query['event.type'] = filter.type;
  if (filter.source) query['event.source'] = filter.source;
  if (filter.subject) query['event.subject'] = filter.subject;
  if (filter.eventId) query['event.id'] = filter.eventId;
  if (filter.destination) query['error.destination'] = filter.destination;
  if (filter.since || filter.until) {
    query.firstDeadLetteredAt = {
      ...(filter.since ? { $gte: filter.since } : {}),
      ...(filter.until ? { $lt: filter.until } : {}),
    };
  }
  return query;
}

/** The `dead_letters` collection. Only CRUD, upserts and unique `_id`: every MongoDB-compatible server has them. */
export function createDeadLetterRepository(mongo: MongoHandle): DeadLetterRepository {
  let indexed: Promise<unknown> | undefined;
  async function collection(): Promise<Collection<DeadLetterDocument>> {
    const db = await mongo.db();
    const coll = db.collection<DeadLetterDocument>(DEAD_LETTERS_COLLECTION);
    // Listing is newest first, filtered by status; servers that do not build non-unique indexes still answer.
    indexed ??= coll
      .createIndexes([{ key: { firstDeadLetteredAt: -1, _id: -1 } }, { key: { status: 1, firstDeadLetteredAt: -1 } }])
      .catch(() => (indexed = undefined));
    return coll;
  }

  return {
    async recordArrival({ id, event, error, at }) {
      return withMongo(async () => {
        const coll = await collection();
        const update = {
          $setOnInsert: { event, firstDeadLetteredAt: at, replayCount: 0 },
          $set: { status: 'pending' as const, error, lastDeadLetteredAt: at },
          $inc: { deadLetterCount: 1 },
        };
        // Two arrivals of one new record at once: one upsert inserts, the other meets the unique _id; once more.
        for (let attempt = 1; ; attempt += 1) {
          try {
            const result = await coll.updateOne({ _id: id }, update, { upsert: true });
            return { created: result.upsertedCount === 1 };
          } catch (failure) {
            if (!isDuplicateKey(failure) || attempt >= 3) throw failure;
          }
        }
      });
    },

    async get(id) {
      return withMongo(async () => (await (await collection()).findOne({ _id: id })) ?? undefined);
    },

    async list(filter, page) {
      return withMongo(async () => {
        const query = toQuery(filter);
        if (page.cursor) {
          const cursor = decodeCursor(page.cursor);
          const at = new Date(cursor.at);
          query.$or = [{ firstDeadLetteredAt: { $lt: at } }, { firstDeadLetteredAt: at, _id: { $lt: cursor.id } }];
        }
        const docs = await (await collection())
          .find(query)
          .sort({ firstDeadLetteredAt: -1, _id: -1 })
          .limit(page.limit + 1)
          .toArray();
        const items = docs.slice(0, page.limit);
        return { items, next: docs.length > page.limit ? encodeCursor(items[items.length - 1]!) : null };
      });
    },

    async summary(since, maxDevices) {
      return withMongo(async () => {
        const coll = await collection();
        const pending = await coll.countDocuments({ status: 'pending' });
        const groups = await coll
          .aggregate<{ _id: string; refusals: number; lastAt: Date; lastType: string; lastError: DeliveryError }>([
            { $match: { 'event.subject': { $exists: true }, lastDeadLetteredAt: { $gte: since } } },
            { $sort: { lastDeadLetteredAt: -1 } },
            {
              $group: {
                _id: '$event.subject',
                refusals: { $sum: 1 },
                lastAt: { $first: '$lastDeadLetteredAt' },
                lastType: { $first: '$event.type' },
                lastError: { $first: '$error' },
              },
            },
            { $sort: { lastAt: -1 } },
            { $limit: maxDevices },
          ])
          .toArray();
        return { pending, failingDevices: groups.map(({ _id, ...rest }) => ({ deviceId: _id, ...rest })) };
      });
    },

    async markReplayed(id, seenCount, attempt) {
      return withMongo(async () => {
        const result = await (await collection()).updateOne(
          { _id: id, deadLetterCount: seenCount },
          {
            $set: { status: 'replayed', replayedAt: attempt.at, replayedTo: attempt.to, lastReplay: attempt },
            $inc: { replayCount: 1 },
          },
        );
        if (result.matchedCount === 1) return true;
        // It came back while we replayed: count the attempt, leave it pending.
        await (await collection()).updateOne({ _id: id }, { $set: { lastReplay: attempt }, $inc: { replayCount: 1 } });
        return false;
      });
    },

    async recordReplayFailure(id, attempt) {
      await withMongo(async () => {
        await (await collection()).updateOne({ _id: id }, { $set: { lastReplay: attempt }, $inc: { replayCount: 1 } });
      });
    },
  };
}
