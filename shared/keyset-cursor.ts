import type { Collection, Document, Filter } from 'mongodb';
import { InvalidInputError } from './errors.js';
import { withMongo } from './mongo.js';

/** An opaque cursor for keyset pagination: the sort key of the last item, base64url JSON. */
export function encodeCursor(time: Date, id: string): string {
  return Buffer.from(JSON.stringify([time.getTime(), id])).toString('base64url');
}

export function decodeCursor(cursor: string): { time: Date; id: string } {
  try {
    const [time, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown[];
    if (typeof time === 'number' && Number.isFinite(time) && typeof id === 'string')
      return { time: new Date(time), id };
  } catch {
    // fall through
  }
  throw new InvalidInputError('the cursor is not one this API returned', [
    { path: 'cursor', code: 'invalid_cursor', message: 'invalid cursor' },
  ]);
}

/**
 * One page of a collection, newest first by `field` then `_id` (keyset pagination: stable while documents
 * are added, no offset scan), after the opaque `cursor` of the previous page.
 */
export async function newestFirst<T extends { _id: string }>(
  collection: () => Promise<Collection<T>>,
  field: keyof T & string,
  page: { limit: number; cursor?: string },
): Promise<{ items: T[]; next: string | null }> {
  const after = page.cursor === undefined ? undefined : decodeCursor(page.cursor);
  const filter: Document = after
    ? { $or: [{ [field]: { $lt: after.time } }, { [field]: after.time, _id: { $lt: after.id } }] }
    : {};
  const docs = (await withMongo(async () =>
    (
      await collection()
    )
      .find(filter as Filter<T>)
      .sort({ [field]: -1, _id: -1 })
      .limit(page.limit + 1)
      .toArray(),
  )) as T[];
  const items = docs.slice(0, page.limit);
  const last = items.at(-1);
  return { items, next: docs.length > page.limit && last ? encodeCursor(last[field] as Date, last._id) : null };
}
