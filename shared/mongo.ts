import {
  type Collection,
  type Db,
  type Document,
  MongoBulkWriteError,
  MongoClient,
  type MongoClientOptions,
  MongoNetworkError,
  MongoServerError,
  MongoServerSelectionError,
  MongoWriteConcernError,
  type OptionalUnlessRequiredId,
  type ReadPreferenceMode,
  WriteConcern,
  type WriteError,
} from 'mongodb';
import { DependencyUnavailableError } from './errors.js';

/** `mongoFields` of shared/config.ts as a deployable's validated config holds them. */
export interface MongoSettings {
  MONGODB_URL: string;
  MONGODB_DB: string;
  MONGODB_WRITE_CONCERN: string | number;
  MONGODB_JOURNAL: boolean;
  MONGODB_WRITE_TIMEOUT_MS: number;
  MONGODB_READ_PREFERENCE: ReadPreferenceMode;
}

/**
 * The write concern and read preference every operation of a deployable carries (MongoDB manual, "Write
 * Concern", "Read Preference"). These win over the same options in MONGODB_URL. With `w: majority` and the
 * journal, an acknowledged write is on disk on a majority of the replica set's voting members, so the
 * election after a primary's loss keeps it; a write that times out waiting (`wtimeoutMS`) may still land,
 * and is answered 503 so the event's redelivery repeats it (every write kiot makes is keyed, so the repeat
 * is harmless). A standalone server (mongo-java-server, a single mongod) acknowledges `majority` alone.
 */
export function mongoOptions(settings: MongoSettings): MongoClientOptions {
  return {
    writeConcern: {
      w: settings.MONGODB_WRITE_CONCERN as MongoClientOptions['w'],
      journal: settings.MONGODB_JOURNAL,
      wtimeoutMS: settings.MONGODB_WRITE_TIMEOUT_MS,
    },
    readPreference: settings.MONGODB_READ_PREFERENCE,
  };
}

/** The handle a composition root makes: its URL and database with its durability settings. */
export function connectMongo(settings: MongoSettings, options: MongoClientOptions = {}): MongoHandle {
  return createMongo(settings.MONGODB_URL, settings.MONGODB_DB, { ...mongoOptions(settings), ...options });
}

export interface MongoHandle {
  /** The database, connecting on first use and reusing the connection for every later invocation. */
  db(): Promise<Db>;
  close(): Promise<void>;
}

/**
 * A lazily connected MongoDB client. It connects on first use (a function that scales from zero does
 * not pay for it before its first event) and again after a failed attempt.
 * No `serverApi` and no sessions: compatible servers (mongo-java-server, FerretDB, DocumentDB) lack them.
 */
export function createMongo(url: string, dbName: string, options: MongoClientOptions = {}): MongoHandle {
  let connecting: Promise<MongoClient> | undefined;
  let client: MongoClient | undefined;
  // One Db per connection: `client.db()` builds a new object (options, read/write concerns) on every call.
  let database: Promise<Db> | undefined;
  return {
    async db() {
      if (!connecting) {
        const candidate = new MongoClient(url, {
          serverSelectionTimeoutMS: 2_000,
          connectTimeoutMS: 2_000,
          retryWrites: true,
          maxPoolSize: 20,
          ...options,
        });
        database = undefined;
        connecting = candidate.connect().then(
          (connected) => (client = connected),
          (error: unknown) => {
            connecting = undefined;
            void candidate.close().catch(() => undefined);
            throw new DependencyUnavailableError('mongodb', error);
          },
        );
      }
      database ??= connecting.then((connected) => connected.db(dbName));
      return database;
    },
    async close() {
      const current = client;
      connecting = undefined;
      database = undefined;
      client = undefined;
      await current?.close();
    },
  };
}

/** MongoDB's duplicate key error (E11000), as every compatible server reports it. */
export const DUPLICATE_KEY = 11000;

/** Whether a write failed only because a document with that unique key already exists. */
export function isDuplicateKey(error: unknown): boolean {
  return error instanceof MongoServerError && error.code === DUPLICATE_KEY;
}

/**
 * The documents of one `insert` command at most: maxWriteBatchSize, 100,000 since MongoDB 3.6 (and on DocumentDB,
 * FerretDB); a longer list goes in several commands.
 */
export const INSERT_COMMAND_MAX_DOCS = 100_000;
/**
 * The estimated BSON bytes of one `insert` command's documents at most: half of maxBsonObjectSize (16 MiB, the
 * bound of a command document, plus 16 KiB of headroom for the command itself), so that an estimate off by half
 * still fits.
 */
export const INSERT_COMMAND_MAX_BYTES = 8 * 1024 * 1024;

/** What an unordered insert left unwritten, by position in its documents: duplicate keys, and the rest. */
export interface UnorderedInsertErrors {
  duplicates: number[];
  others: { index: number; code?: number; errmsg?: string }[];
}

/** One write error of an insert command's answer (MongoDB manual, "insert": `writeErrors`). */
type InsertWriteError = Pick<WriteError, 'index' | 'code' | 'errmsg'>;

/**
 * Sorts an unordered insert's write errors into `into`: duplicate keys, and the rest; `offset` places a command's
 * positions in the caller's whole list of documents (one list may go in several commands).
 */
function sortWriteErrors(writeErrors: Iterable<InsertWriteError>, offset: number, into: UnorderedInsertErrors): void {
  for (const { index, code, errmsg } of writeErrors) {
    if (code === DUPLICATE_KEY) into.duplicates.push(offset + index);
    else into.others.push({ index: offset + index, code, errmsg });
  }
}

/**
 * What a failed unordered `insertMany` left unwritten (with `ordered: false` every document not listed was
 * inserted: MongoDB insert command, `ordered`); undefined for any other error, and for a bulk write whose write
 * concern was not met (the caller rethrows it: `withMongo` makes it a 503, and the documents' keys make the retry
 * harmless).
 */
export function unorderedInsertErrors(error: unknown): UnorderedInsertErrors | undefined {
  if (!(error instanceof MongoBulkWriteError) || error.result.getWriteConcernError() !== undefined) return undefined;
  const errors: UnorderedInsertErrors = { duplicates: [], others: [] };
  sortWriteErrors(
    [error.writeErrors].flat().filter((writeError) => writeError !== undefined),
    0,
    errors,
  );
  return errors;
}

/**
 * An unordered insert as the raw `insert` command (MongoDB manual, "insert"; `ordered: false`: every document not
 * in `writeErrors` was inserted) rather than `insertMany`, whose bulk-write layer computes every document's BSON
 * size and keeps per-document bookkeeping before the driver serializes them again: ~5 % of telemetry-ingest's CPU
 * in bench:ingest's storage step (issue 12). Its bounds are the caller's here: the documents are split into
 * commands of at most INSERT_COMMAND_MAX_DOCS and INSERT_COMMAND_MAX_BYTES by `bytesOf`, an upper bound of a
 * document's BSON size. The database's write concern goes with each command (a command does not inherit it); a
 * write concern error is thrown (the driver's `MongoWriteConcernError`: `isMongoUnavailable`), as is any failure
 * of a command as a whole. No session, no retryable write: a failed insert is retried by the caller (a 503, the
 * event redelivered), and the documents' keys make that harmless.
 */
export async function insertUnordered<T extends Document>(
  db: Db,
  collection: string,
  docs: readonly T[],
  bytesOf: (doc: T) => number,
): Promise<UnorderedInsertErrors> {
  const chunks: { offset: number; documents: T[] }[] = [];
  let documents: T[] = [];
  let offset = 0;
  let bytes = 0;
  for (let index = 0; index < docs.length; index += 1) {
    const doc = docs[index]!;
    const size = bytesOf(doc);
    if (
      documents.length > 0 &&
      (documents.length >= INSERT_COMMAND_MAX_DOCS || bytes + size > INSERT_COMMAND_MAX_BYTES)
    ) {
      chunks.push({ offset, documents });
      documents = [];
      offset = index;
      bytes = 0;
    }
    documents.push(doc);
    bytes += size;
  }
  if (documents.length > 0) chunks.push({ offset, documents });
  const concern = db.writeConcern;
  const answers = await Promise.all(
    chunks.map(async (chunk) => {
      const command: Document = { insert: collection, documents: chunk.documents, ordered: false };
      if (concern) WriteConcern.apply(command, concern);
      return { offset: chunk.offset, answer: await db.command(command) };
    }),
  );
  const errors: UnorderedInsertErrors = { duplicates: [], others: [] };
  for (const { offset: start, answer } of answers) {
    const writeErrors = answer.writeErrors as InsertWriteError[] | undefined;
    if (Array.isArray(writeErrors)) sortWriteErrors(writeErrors, start, errors);
  }
  return errors;
}

/** Inserts a document under its `_id`; false (and nothing written) when one with that id exists already. */
export async function insertIfAbsent<T extends Document>(
  collection: Collection<T>,
  doc: OptionalUnlessRequiredId<T>,
): Promise<boolean> {
  try {
    await collection.insertOne(doc);
    return true;
  } catch (error) {
    if (isDuplicateKey(error)) return false;
    throw error;
  }
}

/**
 * Server errors of a replica set changing hands or shutting down (the retryable error codes of MongoDB's
 * "Retryable Writes" specification), and 64 WriteConcernTimeout (a majority did not confirm in time).
 */
const UNAVAILABLE_CODES = new Set([6, 7, 64, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436]);

/** Whether a driver error means the server is out of reach (retry later) rather than a bad request. */
export function isMongoUnavailable(error: unknown): boolean {
  if (error instanceof DependencyUnavailableError) return true;
  if (error instanceof MongoNetworkError || error instanceof MongoServerSelectionError) return true;
  // The write may have landed; only the durability it asked for is not confirmed: redeliver.
  if (error instanceof MongoWriteConcernError) return true;
  if (error instanceof MongoBulkWriteError && error.result.getWriteConcernError() !== undefined) return true;
  if (error instanceof MongoServerError && typeof error.code === 'number' && UNAVAILABLE_CODES.has(error.code))
    return true;
  const label = (error as { hasErrorLabel?: (label: string) => boolean }).hasErrorLabel;
  return typeof label === 'function' && (label.call(error, 'RetryableWriteError') || label.call(error, 'ResetPool'));
}

/** Runs a store operation, turning "the server is down" into a 503 so Knative retries the event. */
export async function withMongo<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    if (isMongoUnavailable(error)) throw new DependencyUnavailableError('mongodb', error);
    throw error;
  }
}
