import { createHash } from 'node:crypto';
import { DEVICES_COLLECTION, type DeviceDocument, deviceIdSchema } from './devices.js';
import { UnauthorizedError } from './errors.js';
import type { MongoHandle } from './mongo.js';
import { withMongo } from './mongo.js';
import { createTtlCache } from './ttl-cache.js';

export type VerifySecret = (secret: string, stored: string) => Promise<boolean>;

export interface DeviceAuthenticator {
  /** Resolves when `Authorization: Basic` names `deviceId` with its current secret; else 401. */
  authenticate(deviceId: string, authorization: string | undefined): Promise<void>;
}

/** RFC 7617 §2: `Basic base64(user-id ":" password)`; the user id cannot contain a colon. */
export function parseBasic(authorization: string | undefined): { user: string; password: string } | undefined {
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization ?? '');
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? undefined : { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/**
 * Devices that cannot speak MQTT post telemetry with their own credential (username = device id).
 * scrypt is slow by design, so a success is remembered for `ttlMs` under a digest of device and
 * secret: a rotated credential or a disabled device stops working within that TTL at most. The memory
 * is a bounded LRU (`maxEntries`): past it the least recently seen device pays one scrypt again.
 * Failures are not remembered; one message per failed guess is the cost of a wrong secret.
 * Unknown, disabled and wrong all answer the same 401, so the answer tells nothing about the registry.
 */
export function createDeviceAuthenticator(
  mongo: MongoHandle,
  verifySecret: VerifySecret,
  options: { ttlMs: number; maxEntries?: number; now?: () => number },
): DeviceAuthenticator {
  const verified = createTtlCache<true>({
    ttlMs: options.ttlMs,
    maxEntries: options.maxEntries ?? 100_000,
    now: options.now,
  });
  const denied = () =>
    new UnauthorizedError('a valid device credential is required (HTTP Basic: device id and secret)');

  return {
    async authenticate(deviceId, authorization) {
      const basic = parseBasic(authorization);
      if (!basic || basic.user !== deviceId || !deviceIdSchema.safeParse(deviceId).success)
        throw withBasicChallenge(denied());
      const digest = createHash('sha256').update(`${deviceId}\u0000${basic.password}`).digest('base64url');
      if (verified.get(digest)) return;
      const device = await withMongo(async () =>
        (await mongo.db())
          .collection<DeviceDocument>(DEVICES_COLLECTION)
          .findOne({ _id: deviceId }, { projection: { status: 1, credential: 1 } }),
      );
      if (device?.status !== 'active' || typeof device.credential?.hash !== 'string')
        throw withBasicChallenge(denied());
      if (!(await verifySecret(basic.password, device.credential.hash))) throw withBasicChallenge(denied());
      verified.set(digest, true);
    },
  };
}

/** RFC 7235 §4.1: a 401 names the scheme the client should use. */
function withBasicChallenge(error: UnauthorizedError): UnauthorizedError {
  (error.headers as Record<string, string>)['www-authenticate'] = 'Basic realm="kiot-devices", charset="UTF-8"';
  return error;
}
