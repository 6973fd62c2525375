import { DependencyUnavailableError } from '../../../shared/errors.js';
import { generateSecret, hashGeneratedSecret } from '../../../shared/secrets.js';
import type { Ctx, RegistryDeps } from '../deps.js';
import { toView } from '../view.js';
import { announce, DEVICE_UPDATED, deviceEvent } from './announce.js';
import { loadDevice } from './query-devices.js';
import type { Registered } from './register-device.js';

/**
 * New secret, broker first: the old secret stops working at the broker before the registry knows the new
 * one. If MongoDB then fails the device is locked out (fail closed) until the retried rotation succeeds;
 * the reverse order would leave the old secret working while the client believes it revoked.
 */
export async function rotateCredentials(id: string, deps: RegistryDeps, ctx: Ctx): Promise<Registered> {
  const device = await loadDevice(id, deps);
  const secret = generateSecret();
  const hash = hashGeneratedSecret(secret);
  await deps.broker.provision([{ id: device._id, secret, enabled: device.status === 'active' }]);
  const now = deps.now();
  // The credential is independent of a concurrent PATCH, so re-read and re-apply instead of answering 412.
  for (let attempt = 0; attempt < 5; attempt += 1) {
    const current = attempt === 0 ? device : await loadDevice(id, deps);
    const set = { credential: { hash, rotatedAt: now }, updatedAt: now };
    const event = deviceEvent(DEVICE_UPDATED, { ...current, ...set, version: current.version + 1 }, now, {
      changed: ['credential'],
    });
    const updated = await deps.devices.update(id, current.version, set, event);
    if (updated) {
      await deps.authCache.invalidate([id]);
      await announce(deps, ctx, id, {
        events: updated.pendingEvents ?? [],
        tombstone: false,
        registration: updated.registeredIn,
      });
      return { device: toView(updated), secret };
    }
  }
  throw new DependencyUnavailableError('mongodb', new Error('device kept changing during rotation'));
}
