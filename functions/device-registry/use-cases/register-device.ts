import { randomUUID } from 'node:crypto';
import { ConflictError } from '../../../shared/errors.js';
import { generateSecret, hashGeneratedSecret } from '../../../shared/secrets.js';
import type { Ctx, RegistryDeps } from '../deps.js';
import type { RegistryDevice } from '../device-repository.js';
import type { DeviceView, RegisterDeviceInput } from '../schema.js';
import { toView } from '../view.js';
import { announce, DEVICE_REGISTERED, deviceEvent } from './announce.js';

/** How long an unsynced registration is left to its own request before a retry may take the id over. */
export const PENDING_TAKEOVER_MS = 30_000;

export interface Registered {
  device: DeviceView;
  /** The plaintext secret: returned this once, stored only as a hash (shared/secrets.ts). */
  secret: string;
}

export interface RegisterOptions {
  provisionedBy?: { tokenId: string; requestId: string };
}

/**
 * Registers one device. MongoDB first (its unique _id decides who gets an id), flagged `brokerSynced:false`;
 * then the broker; then the flag, in the same write as the `io.kiot.device.registered` it owes (outbox.ts).
 * If the broker is down the document is removed again and the caller gets 503: the secret was never shown,
 * so nothing can use a half-made device.
 */
export async function registerDevice(
  input: RegisterDeviceInput,
  deps: RegistryDeps,
  ctx: Ctx,
  options: RegisterOptions = {},
): Promise<Registered> {
  const secret = generateSecret();
  const device = newDevice(input, hashGeneratedSecret(secret), deps.now(), options);
  await claimId(device, deps, options);
  await syncBroker([device], [secret], deps);
  device.brokerSynced = true;
  await deps.devices.markSynced([{ id: device._id, event: deviceEvent(DEVICE_REGISTERED, device, deps.now()) }]);
  await forgetAbsence([device._id], deps, ctx);
  // Read back, not assumed: a re-registered id may still owe the `deleted` of its previous device, which goes first.
  await announce(deps, ctx, device._id);
  return { device: toView(device), secret };
}

export function newDevice(
  input: RegisterDeviceInput,
  hash: string,
  now: Date,
  options: RegisterOptions = {},
): RegistryDevice {
  return {
    _id: input.id ?? randomUUID(),
    ...(input.name === undefined ? {} : { name: input.name }),
    ...(input.type === undefined ? {} : { type: input.type }),
    tags: input.tags ?? [],
    metadata: input.metadata ?? {},
    status: input.status ?? 'active',
    credential: { hash, rotatedAt: now },
    createdAt: now,
    updatedAt: now,
    version: 1,
    brokerSynced: false,
    ...(options.provisionedBy ? { provisionedBy: options.provisionedBy } : {}),
  };
}

/**
 * Inserts the document, or takes over the tombstone of a deleted device (keeping the events it owes), or an
 * unsynced one left by a registration that failed half-way (its own provisioning request at once, anyone
 * else's after PENDING_TAKEOVER_MS); else 409.
 */
async function claimId(device: RegistryDevice, deps: RegistryDeps, options: RegisterOptions): Promise<void> {
  if (await deps.devices.insert(device)) return;
  if (await deps.devices.claimTombstone(device)) return;
  const existing = await deps.devices.find(device._id);
  const own =
    existing?.provisionedBy?.requestId !== undefined &&
    existing.provisionedBy.requestId === options.provisionedBy?.requestId;
  const abandoned =
    existing?.brokerSynced === false &&
    (own || device.createdAt.getTime() - existing.updatedAt.getTime() > PENDING_TAKEOVER_MS);
  if (
    existing &&
    abandoned &&
    (await deps.devices.replaceUnsynced(existing, { ...device, version: existing.version + 1 }))
  ) {
    device.version = existing.version + 1;
    return;
  }
  throw new ConflictError(`device ${device._id} already exists`, 'device_exists', { id: device._id });
}

/** Creates the broker clients; on failure removes the unsynced documents again and rethrows (503). */
export async function syncBroker(devices: RegistryDevice[], secrets: string[], deps: RegistryDeps): Promise<void> {
  try {
    await deps.broker.provision(
      devices.map((device, i) => ({ id: device._id, secret: secrets[i]!, enabled: device.status === 'active' })),
    );
  } catch (error) {
    await deps.devices.removeUnsynced(devices.map((device) => device._id)).catch(() => undefined);
    throw error;
  }
}

/** A broker hook may have cached "no such device" for this id; a new device must not wait out that TTL. */
export async function forgetAbsence(ids: string[], deps: RegistryDeps, ctx: Ctx): Promise<void> {
  await deps.authCache
    .invalidate(ids)
    .catch((error: unknown) => ctx.logger.warn({ err: error }, 'auth cache not invalidated'));
}
