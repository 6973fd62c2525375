import { zodIssues } from '../../../shared/errors.js';
import { generateSecret, hashGeneratedSecret } from '../../../shared/secrets.js';
import type { Ctx, RegistryDeps } from '../deps.js';
import type { RegistryDevice } from '../device-repository.js';
import { type RegisterDeviceInput, registerDeviceSchema } from '../schema.js';
import { DEVICE_REGISTERED, deviceEvent } from './announce.js';
import { forgetAbsence, newDevice, syncBroker } from './register-device.js';

export interface BulkItemResult {
  index: number;
  status: 'created' | 'conflict' | 'invalid';
  id?: string;
  secret?: string;
  error?: unknown;
}

/**
 * Registers up to 1,000 devices with one result per item: the valid ones are created even when others
 * fail. Steps: validate each item → drop ids repeated within the call → hash all secrets (one salted SHA-256
 * each: they are generated, see shared/secrets.ts) → one unordered insertMany (duplicate keys map back to their items) →
 * the broker in chunks → mark synced → announce (in batch events, shared/device-batch.ts) while the broker hooks'
 * cached "no such device" answers are dropped. With a broker that asks the registry (hooks) there is nothing to
 * write to it: the documents are inserted synced, their events owed by batch records written just before
 * (registration-batches.ts), so that announcing them needs no second write per device.
 */
export async function registerBulk(
  items: unknown[],
  deps: RegistryDeps,
  ctx: Ctx,
): Promise<{ created: number; results: BulkItemResult[] }> {
  const results: BulkItemResult[] = [];
  const valid = validateItems(items, results);
  const secrets = valid.map(() => generateSecret());
  const now = deps.now();
  const hashes = secrets.map(hashGeneratedSecret);
  const devices = valid.map((item, i) => newDevice(item.input, hashes[i]!, now));
  // A broker that asks the registry needs nothing written to it: each document is stored synced, its
  // `registered` event owed by its batch record (written first), so one insertMany is the devices' whole write.
  const announcedAtInsert = !deps.broker.storesCredentials;
  let batches: string[] = [];
  if (announcedAtInsert) {
    const fresh = devices.map((device) => {
      device.brokerSynced = true;
      return { id: device._id, event: deviceEvent(DEVICE_REGISTERED, device, now) };
    });
    const registrations = await deps.outbox.openBatches(fresh, now);
    devices.forEach((device, i) => {
      device.registeredIn = registrations[i]!;
    });
    batches = [...new Set(registrations.map((registration) => registration.batch))];
  }

  const duplicates = await deps.devices.insertMany(devices);
  const created: RegistryDevice[] = [];
  const createdSecrets: string[] = [];
  devices.forEach((device, i) => {
    const index = valid[i]!.index;
    if (duplicates.has(i)) {
      results.push({ index, status: 'conflict', id: device._id, error: { code: 'device_exists' } });
    } else {
      created.push(device);
      createdSecrets.push(secrets[i]!);
      results.push({ index, status: 'created', id: device._id, secret: secrets[i]! });
    }
  });

  let announced: Promise<void>;
  if (announcedAtInsert) {
    // A refused (duplicate) item's document is someone else's: only the inserted ones are in the batch events.
    const inserted = created.map((device) => ({ id: device._id, registration: device.registeredIn! }));
    announced = deps.outbox.deliverBatches(batches, inserted);
  } else {
    await syncBroker(created, createdSecrets, deps);
    const synced = created.map((device) => {
      device.brokerSynced = true;
      return { id: device._id, event: deviceEvent(DEVICE_REGISTERED, device, now) };
    });
    await deps.devices.markSynced(synced);
    announced = deps.outbox.deliverFresh(synced);
  }
  // Both need only the write before them, not each other; both are done before the answer (a device may connect
  // as soon as it has its secret).
  await Promise.all([
    forgetAbsence(
      created.map((device) => device._id),
      deps,
      ctx,
    ),
    announced.catch((error: unknown) => {
      ctx.logger.warn({ err: error }, 'events not emitted yet; they stay pending for the outbox flush');
    }),
  ]);
  results.sort((a, b) => a.index - b.index);
  return { created: created.length, results };
}

function validateItems(items: unknown[], results: BulkItemResult[]): { index: number; input: RegisterDeviceInput }[] {
  const seen = new Set<string>();
  const valid: { index: number; input: RegisterDeviceInput }[] = [];
  items.forEach((item, index) => {
    const parsed = registerDeviceSchema.safeParse(item);
    if (!parsed.success) {
      results.push({ index, status: 'invalid', error: { code: 'invalid_input', details: zodIssues(parsed.error) } });
    } else if (parsed.data.id !== undefined && seen.has(parsed.data.id)) {
      results.push({ index, status: 'conflict', id: parsed.data.id, error: { code: 'duplicate_in_request' } });
    } else {
      if (parsed.data.id !== undefined) seen.add(parsed.data.id);
      valid.push({ index, input: parsed.data });
    }
  });
  return valid;
}
