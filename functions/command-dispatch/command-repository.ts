import type { Collection, Filter } from 'mongodb';
import type { MongoHandle } from '../../shared/mongo.js';
import { insertIfAbsent, withMongo } from '../../shared/mongo.js';
import { ALLOWED_FROM, type CommandStatus } from './lifecycle.js';

export const COMMANDS_COLLECTION = 'commands';

export interface HistoryEntry {
  status: CommandStatus;
  at: Date;
  /** Send attempt (SENT), or the event id that caused the transition (acks). */
  attempt?: number;
  cause?: string;
}

/** One document per command (`commands` collection, `_id` = command id) with its status history. */
export interface CommandDocument {
  _id: string;
  deviceId: string;
  name: string;
  params: unknown;
  status: CommandStatus;
  createdAt: Date;
  updatedAt: Date;
  /** The TTL: a command still QUEUED at this time becomes EXPIRED and is never sent. */
  expiresAt: Date;
  timeoutSeconds: number;
  /** Set on each send: no answer by then means TIMED_OUT. */
  deadlineAt?: Date;
  sentAt?: Date;
  deliveredAt?: Date;
  completedAt?: Date;
  /** Sends so far (first send and re-sends on reconnect). */
  attempts: number;
  /**
   * Waited in the device's queue (the device was offline at creation): its ack moves the queue on.
   * Commands sent at once to an online device skip that step, which keeps their acks to one write.
   */
  backlog?: boolean;
  /** A send to the (online) device failed while the sink was down: the sweep sends it again. */
  sendFailedAt?: Date;
  result?: unknown;
  error?: unknown;
  history: HistoryEntry[];
  /** Created under an Idempotency-Key: the digest of the request it answers, to refuse the key's reuse for another. */
  requestDigest?: string;
}

export interface TransitionChange {
  at: Date;
  set?: Partial<
    Pick<CommandDocument, 'deadlineAt' | 'sentAt' | 'deliveredAt' | 'completedAt' | 'result' | 'error' | 'backlog'>
  >;
  /** Extra conditions, e.g. "still unexpired" for a send. */
  where?: Filter<CommandDocument>;
  attempt?: number;
  cause?: string;
  incAttempts?: boolean;
}

export interface CommandPage {
  items: CommandDocument[];
  nextCursor?: string;
}

export interface CommandRepository {
  /** False when a command with this id exists already (a retry under the same Idempotency-Key). */
  insert(doc: CommandDocument): Promise<boolean>;
  remove(id: string): Promise<void>;
  find(id: string): Promise<CommandDocument | null>;
  /**
   * Moves a command to `to` only from a status `ALLOWED_FROM[to]` lists (one atomic findOneAndUpdate),
   * and returns the updated document, or null when the filter matched nothing (a late or duplicate cause).
   */
  transition(id: string, to: CommandStatus, change: TransitionChange): Promise<CommandDocument | null>;
  /** Where `doc` stands among the device's QUEUED commands (1 = next to send), by (createdAt, _id). */
  queuePosition(doc: Pick<CommandDocument, '_id' | 'deviceId' | 'createdAt'>): Promise<number>;
  /** The device's commands that a (re)connect may send, oldest first. */
  pendingForDevice(deviceId: string, limit: number): Promise<CommandDocument[]>;
  /** One device's commands (or, with `deviceId` undefined, the fleet's), newest first. */
  list(
    deviceId: string | undefined,
    statuses: CommandStatus[] | undefined,
    limit: number,
    cursor?: string,
  ): Promise<CommandPage>;
  /** How many commands are in each of `statuses` at `now`, fleet-wide (one past its TTL or deadline is not). */
  countByStatus(statuses: readonly CommandStatus[], now: Date): Promise<Partial<Record<CommandStatus, number>>>;
  /** QUEUED past their TTL, and SENT/DELIVERED past their deadline (of one device, or of all). */
  overdue(now: Date, limit: number, deviceId?: string): Promise<CommandDocument[]>;
  /** Records that sending a QUEUED command failed (the sink was down): the sweep retries it. */
  markSendFailed(id: string, at: Date): Promise<void>;
  /** Devices with a QUEUED command whose send failed, at most `limit`. */
  devicesWithFailedSends(limit: number): Promise<string[]>;
  /** Clears the failed-send marks of a device's commands (its queue moved on, or its next connect will). */
  clearFailedSends(deviceId: string): Promise<void>;
  ensureIndexes(): Promise<void>;
}

/**
 * Overdue commands: QUEUED past the TTL, SENT/DELIVERED past the deadline. The same conditions, as pending-work
 * probes, tell the tick gate whether the sweep has anything to do (`SWEEP_PENDING_WORK`).
 */
function overdueFilters(now: Date): Filter<CommandDocument>[] {
  return [
    { status: 'QUEUED', expiresAt: { $lte: now } },
    { status: { $in: ['SENT', 'DELIVERED'] }, deadlineAt: { $lte: now } },
  ];
}

/** Opaque page cursor: the (createdAt, _id) of the last item of the page, base64url JSON. */
export function encodeCursor(doc: Pick<CommandDocument, '_id' | 'createdAt'>): string {
  return Buffer.from(JSON.stringify([doc.createdAt.getTime(), doc._id])).toString('base64url');
}

export function decodeCursor(cursor: string): { createdAt: Date; id: string } | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (!Array.isArray(value) || typeof value[0] !== 'number' || typeof value[1] !== 'string') return undefined;
    return { createdAt: new Date(value[0]), id: value[1] };
  } catch {
    return undefined;
  }
}

export function createCommandRepository(mongo: MongoHandle): CommandRepository {
  const collection = async (): Promise<Collection<CommandDocument>> =>
    (await mongo.db()).collection<CommandDocument>(COMMANDS_COLLECTION);

  return {
    insert: (doc) => withMongo(async () => insertIfAbsent(await collection(), doc)),
    remove: (id) => withMongo(async () => void (await (await collection()).deleteOne({ _id: id }))),
    find: (id) => withMongo(async () => (await collection()).findOne({ _id: id })),

    transition: (id, to, change) =>
      withMongo(async () => {
        const entry: HistoryEntry = { status: to, at: change.at };
        if (change.attempt !== undefined) entry.attempt = change.attempt;
        if (change.cause !== undefined) entry.cause = change.cause;
        return (await collection()).findOneAndUpdate(
          { ...change.where, _id: id, status: { $in: [...ALLOWED_FROM[to]] } },
          {
            $set: { status: to, updatedAt: change.at, ...change.set },
            $push: { history: entry },
            ...(change.incAttempts ? { $inc: { attempts: 1 } } : {}),
          },
          { returnDocument: 'after' },
        );
      }),

    queuePosition: (doc) =>
      withMongo(async () =>
        (await collection()).countDocuments({
          deviceId: doc.deviceId,
          status: 'QUEUED',
          // Expired by then, whether or not a reader has settled them yet (lazy expiry): not ahead in the queue.
          expiresAt: { $gt: doc.createdAt },
          $or: [{ createdAt: { $lt: doc.createdAt } }, { createdAt: doc.createdAt, _id: { $lte: doc._id } }],
        }),
      ),

    pendingForDevice: (deviceId, limit) =>
      withMongo(async () =>
        (await collection())
          .find({ deviceId, status: { $in: ['QUEUED', 'SENT'] } })
          .sort({ createdAt: 1, _id: 1 })
          .limit(limit)
          .toArray(),
      ),

    list: (deviceId, statuses, limit, cursor) =>
      withMongo(async () => {
        const filter: Filter<CommandDocument> = deviceId === undefined ? {} : { deviceId };
        if (statuses) filter.status = { $in: statuses };
        const after = cursor ? decodeCursor(cursor) : undefined;
        if (after) {
          filter.$or = [
            { createdAt: { $lt: after.createdAt } },
            { createdAt: after.createdAt, _id: { $lt: after.id } },
          ];
        }
        // Newest first; one extra item tells whether there is a next page.
        const items = await (await collection())
          .find(filter)
          .sort({ createdAt: -1, _id: -1 })
          .limit(limit + 1)
          .toArray();
        const page = items.slice(0, limit);
        const last = page[page.length - 1];
        return items.length > limit && last ? { items: page, nextCursor: encodeCursor(last) } : { items: page };
      }),

    countByStatus: (statuses, now) =>
      withMongo(async () => {
        const groups = await (await collection())
          .aggregate<{ _id: CommandStatus; n: number }>([
            // Expiry is lazy: a command past its TTL or deadline still says QUEUED/SENT until read; not in flight.
            { $match: { status: { $in: [...statuses] }, $nor: overdueFilters(now) } },
            { $group: { _id: '$status', n: { $sum: 1 } } },
          ])
          .toArray();
        return Object.fromEntries(groups.map((group) => [group._id, group.n]));
      }),

    overdue: (now, limit, deviceId) =>
      withMongo(async () =>
        (await collection())
          .find({ ...(deviceId === undefined ? {} : { deviceId }), $or: overdueFilters(now) })
          .limit(limit)
          .toArray(),
      ),

    markSendFailed: (id, at) =>
      withMongo(async () => {
        await (await collection()).updateOne({ _id: id, status: 'QUEUED' }, { $set: { sendFailedAt: at } });
      }),

    devicesWithFailedSends: (limit) =>
      withMongo(async () => {
        const rows = await (await collection())
          .aggregate<{ _id: string }>([
            { $match: { status: 'QUEUED', sendFailedAt: { $exists: true } } },
            { $group: { _id: '$deviceId' } },
            { $limit: limit },
          ])
          .toArray();
        return rows.map((row) => row._id);
      }),

    clearFailedSends: (deviceId) =>
      withMongo(async () => {
        await (await collection()).updateMany(
          { deviceId, sendFailedAt: { $exists: true } },
          { $unset: { sendFailedAt: '' } },
        );
      }),

    ensureIndexes: () =>
      withMongo(async () => {
        const commands = await collection();
        // Non-unique: real MongoDB builds them; mongo-java-server accepts and scans (docs/architecture.md).
        await commands.createIndex({ deviceId: 1, status: 1, createdAt: 1 });
        await commands.createIndex({ deviceId: 1, createdAt: -1, _id: -1 });
        await commands.createIndex({ status: 1, expiresAt: 1 });
        await commands.createIndex({ status: 1, deadlineAt: 1 });
        await commands.createIndex({ status: 1, sendFailedAt: 1 });
        // The fleet-wide listing by status, newest first (GET /commands?status=…).
        await commands.createIndex({ status: 1, createdAt: -1, _id: -1 });
      }),
  };
}
