import { InvalidInputError, NotFoundError } from '../../../shared/errors.js';
import type { RegistryDeps } from '../deps.js';
import type { RegistryDevice } from '../device-repository.js';
import type { DeviceView, ListQuery } from '../schema.js';
import { toView } from '../view.js';

export async function loadDevice(id: string, deps: RegistryDeps): Promise<RegistryDevice> {
  const device = await deps.devices.find(id);
  // A registration still on its way to the broker does not exist yet for its readers.
  if (!device || device.brokerSynced === false) throw new NotFoundError(`no device ${id}`, 'device_not_found');
  return device;
}

export async function getDevice(id: string, deps: RegistryDeps): Promise<RegistryDevice> {
  return loadDevice(id, deps);
}

/** The cursor is opaque to clients: base64url of the last id of the page (keyset pagination on _id). */
export const encodeCursor = (lastId: string) => Buffer.from(JSON.stringify({ after: lastId })).toString('base64url');

export function decodeCursor(cursor: string): string {
  try {
    const parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { after?: unknown };
    if (typeof parsed.after === 'string') return parsed.after;
  } catch {
    // falls through to the 400
  }
  throw new InvalidInputError('the cursor is not one this API gave out', undefined, 'invalid_cursor');
}

export async function listDevices(
  query: ListQuery,
  deps: RegistryDeps,
): Promise<{ items: DeviceView[]; nextCursor?: string }> {
  const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
  // One more than asked tells whether another page exists without a count.
  const found = await deps.devices.list(
    { type: query.type, tag: query.tag, status: query.status, idPrefix: query.idPrefix, ids: query.ids },
    after,
    query.limit + 1,
  );
  const page = found.slice(0, query.limit);
  const items = page.filter((device) => device.brokerSynced !== false).map(toView);
  const last = page[page.length - 1];
  return found.length > query.limit && last ? { items, nextCursor: encodeCursor(last._id) } : { items };
}
