import type { MongoHandle } from '../../../shared/mongo.js';
import { TELEMETRY_COLLECTION, type TelemetrySampleDocument } from '../../../shared/telemetry.js';

/**
 * Samples stored the way telemetry-ingest stores them (functions/telemetry-ingest/telemetry-repository.ts,
 * `SampleDocument`: one document per sample, `_id` from the device's msgId or event id and position,
 * `receivedAt` = the event's time, `ingestedAt` = when the insert was issued). Written here without importing
 * that capability; a duplicate `_id` is dropped by the unique index exactly as its `insertBatch` drops it.
 */
export type SampleDoc = TelemetrySampleDocument;

/** Stores like telemetry-ingest's `insertBatch`: `ingestedAt` stamped on every document of the batch. */
export async function storeSamples(
  mongo: MongoHandle,
  docs: SampleDoc[],
  ingestedAt = new Date(),
): Promise<SampleDoc[]> {
  for (const doc of docs) doc.ingestedAt = ingestedAt;
  const collection = (await mongo.db()).collection<SampleDoc>(TELEMETRY_COLLECTION);
  const stored: SampleDoc[] = [];
  const seen = new Set((await collection.find({}, { projection: { _id: 1 } }).toArray()).map((d) => d._id));
  for (let offset = 0; offset < docs.length; offset += 5_000) {
    const batch = docs.slice(offset, offset + 5_000);
    try {
      await collection.insertMany(batch, { ordered: false });
    } catch (error) {
      if (
        (error as { code?: number }).code !== 11000 &&
        !/E11000|duplicate key/i.test(String((error as Error).message))
      )
        throw error;
    }
  }
  for (const doc of docs) {
    if (seen.has(doc._id)) continue;
    seen.add(doc._id);
    stored.push(doc);
  }
  return stored;
}

export async function storeDevices(
  mongo: MongoHandle,
  devices: { id: string; type?: string; tags?: string[] }[],
): Promise<void> {
  const now = new Date();
  await (await mongo.db()).collection('devices').insertMany(
    devices.map((d) => ({
      _id: d.id as unknown as never,
      type: d.type,
      tags: d.tags ?? [],
      metadata: {},
      status: 'active',
      credential: { hash: 'x', rotatedAt: now },
      createdAt: now,
      updatedAt: now,
      version: 1,
    })),
  );
}

/** A deterministic pseudo-random generator (mulberry32), so a failing case can be replayed. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Values on a 0.25 grid: every sum of them is exact in binary floating point, so results compare with ===. */
export function quarter(rand: () => number, low: number, high: number): number {
  return Math.round((low + rand() * (high - low)) * 4) / 4;
}
