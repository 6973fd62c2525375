import { createHash } from 'node:crypto';
import { once } from 'node:events';
import type { Readable } from 'node:stream';
import { type Collection, GridFSBucket, ObjectId } from 'mongodb';
import { DomainRefusalError, PayloadTooLargeError } from '../../shared/errors.js';
import { type MongoHandle, withMongo } from '../../shared/mongo.js';

/**
 * Firmware artifacts: the bytes in GridFS (bucket `artifact_blobs`: plain `.files` and `.chunks` collections
 * with their indexes, so any MongoDB-compatible server holds them), the metadata in `artifacts`. An upload is
 * streamed chunk by chunk into GridFS while its SHA-256 is computed; it becomes `ready` only when complete,
 * so a cut upload never reaches a device (and `removeStale` deletes it).
 */
export const ARTIFACTS_COLLECTION = 'artifacts';
const BUCKET = 'artifact_blobs';

export interface ArtifactDocument {
  _id: string;
  name: string;
  version: string;
  contentType: string;
  status: 'uploading' | 'ready';
  fileId: ObjectId;
  size: number;
  sha256: string;
  createdAt: Date;
  readyAt?: Date;
}

export interface UploadInput {
  name: string;
  version: string;
  contentType: string;
  /** The SHA-256 (hex) the client says the body has: checked once it is stored (RFC 9530 Content-Digest). */
  expectedSha256?: string;
}

export interface ArtifactStore {
  ensureIndexes(): Promise<void>;
  upload(
    input: UploadInput,
    body: AsyncIterable<Buffer | string>,
    maxBytes: number,
    now: Date,
  ): Promise<ArtifactDocument>;
  get(id: string): Promise<ArtifactDocument | undefined>;
  list(afterId: string | undefined, limit: number): Promise<ArtifactDocument[]>;
  /** The bytes `start..end` (inclusive) of a ready artifact. */
  open(artifact: ArtifactDocument, range?: { start: number; end: number }): Promise<Readable>;
  remove(id: string): Promise<boolean>;
  /** Uploads that never completed, older than `before`: deleted with their chunks. */
  removeStale(before: Date): Promise<number>;
}

export function createArtifactStore(mongo: MongoHandle, chunkSizeBytes = 255 * 1024): ArtifactStore {
  const artifacts = async (): Promise<Collection<ArtifactDocument>> =>
    (await mongo.db()).collection<ArtifactDocument>(ARTIFACTS_COLLECTION);
  let bucket: GridFSBucket | undefined;
  const blobs = async () => (bucket ??= new GridFSBucket(await mongo.db(), { bucketName: BUCKET, chunkSizeBytes }));

  async function deleteBlob(fileId: ObjectId): Promise<void> {
    try {
      await (await blobs()).delete(fileId);
    } catch {
      // Already gone, or never written past its chunks: remove what chunks there are.
      await (await mongo.db()).collection(`${BUCKET}.chunks`).deleteMany({ files_id: fileId });
    }
  }

  const store: ArtifactStore = {
    ensureIndexes: () =>
      withMongo(async () => {
        await (await artifacts()).createIndex({ status: 1, createdAt: 1 });
      }),
    async upload(input, body, maxBytes, now) {
      const fileId = new ObjectId();
      const doc: ArtifactDocument = {
        _id: fileId.toHexString(),
        name: input.name,
        version: input.version,
        contentType: input.contentType,
        status: 'uploading',
        fileId,
        size: 0,
        sha256: '',
        createdAt: now,
      };
      await withMongo(async () => (await artifacts()).insertOne(doc));
      const hash = createHash('sha256');
      const stream = (await blobs()).openUploadStreamWithId(fileId, doc._id, {
        metadata: { artifactId: doc._id, name: input.name, version: input.version },
      });
      let size = 0;
      try {
        for await (const chunk of body) {
          const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
          size += bytes.length;
          if (size > maxBytes) throw new PayloadTooLargeError(maxBytes, size);
          hash.update(bytes);
          if (!stream.write(bytes)) await once(stream, 'drain');
        }
        await new Promise<void>((resolve, reject) => {
          stream.once('error', reject);
          stream.end(() => resolve());
        });
        const sha256 = hash.digest('hex');
        if (input.expectedSha256 !== undefined && input.expectedSha256 !== sha256) {
          throw new DomainRefusalError(
            'digest_mismatch',
            'the body does not have the SHA-256 its Content-Digest names',
            {
              expected: input.expectedSha256,
              actual: sha256,
            },
          );
        }
        const ready = await withMongo(async () =>
          (await artifacts()).findOneAndUpdate(
            { _id: doc._id },
            { $set: { status: 'ready', size, sha256, readyAt: new Date() } },
            { returnDocument: 'after' },
          ),
        );
        return ready!;
      } catch (error) {
        await stream.abort().catch(() => undefined);
        await deleteBlob(fileId).catch(() => undefined);
        await withMongo(async () => (await artifacts()).deleteOne({ _id: doc._id })).catch(() => undefined);
        throw error;
      }
    },
    get: (id) => withMongo(async () => (await (await artifacts()).findOne({ _id: id })) ?? undefined),
    list: (afterId, limit) =>
      withMongo(async () =>
        (await artifacts())
          .find({ status: 'ready', ...(afterId === undefined ? {} : { _id: { $gt: afterId } }) })
          .sort({ _id: 1 })
          .limit(limit)
          .toArray(),
      ),
    async open(artifact, range) {
      // GridFS takes `end` exclusive.
      return (await blobs()).openDownloadStream(
        artifact.fileId,
        range ? { start: range.start, end: range.end + 1 } : {},
      );
    },
    remove: (id) =>
      withMongo(async () => {
        const doc = await (await artifacts()).findOne({ _id: id });
        if (!doc) return false;
        await deleteBlob(doc.fileId);
        await (await artifacts()).deleteOne({ _id: id });
        return true;
      }),
    removeStale: (before) =>
      withMongo(async () => {
        const stale = await (await artifacts()).find({ status: 'uploading', createdAt: { $lt: before } }).toArray();
        for (const doc of stale) await store.remove(doc._id);
        return stale.length;
      }),
  };
  return store;
}
