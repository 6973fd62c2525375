import { InvalidInputError } from '../../shared/errors.js';

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
