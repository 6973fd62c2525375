import { AppError, InvalidInputError } from '../../shared/errors.js';
import type { RegistryDevice } from './device-repository.js';
import type { DeviceView } from './schema.js';

/** The API view of a device: never the credential hash. */
export function toView(device: RegistryDevice): DeviceView {
  return {
    id: device._id,
    ...(device.name === undefined ? {} : { name: device.name }),
    ...(device.type === undefined ? {} : { type: device.type }),
    tags: device.tags,
    metadata: device.metadata,
    status: device.status,
    version: device.version,
    createdAt: device.createdAt.toISOString(),
    updatedAt: device.updatedAt.toISOString(),
    credentialRotatedAt: device.credential.rotatedAt.toISOString(),
  };
}

/** A strong entity tag (RFC 9110 §8.8.3) for a device version. */
export const etagOf = (version: number) => `"${version}"`;

/**
 * The version an `If-Match` header names (RFC 9110 §13.1.1). PATCH requires one: a blind overwrite of a
 * device that another client changed meanwhile is what optimistic concurrency is for, so a missing
 * header is 428 Precondition Required (RFC 6585 §3), a stale one 412.
 */
export function requiredVersion(ifMatch: string | undefined): number {
  if (ifMatch === undefined || ifMatch.trim() === '') {
    throw new AppError(428, 'precondition_required', 'send If-Match with the device ETag');
  }
  const match = /^\s*(?:W\/)?"(\d{1,12})"\s*$/.exec(ifMatch);
  if (!match)
    throw new InvalidInputError('If-Match must be one ETag of this device, e.g. "3"', undefined, 'invalid_if_match');
  return Number(match[1]);
}
