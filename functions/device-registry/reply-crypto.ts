import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

/**
 * AES-256-GCM (NIST SP 800-38D) for stored provisioning replies: 96-bit random IV, 128-bit tag, the
 * request id as additional authenticated data so a reply cannot be moved to another request.
 */
export function sealReply(key: Buffer, requestId: string, plaintext: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(requestId));
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url');
}

/** The plaintext, or `undefined` when the key changed or the record was tampered with. */
export function openReply(key: Buffer, requestId: string, sealed: string): string | undefined {
  try {
    const raw = Buffer.from(sealed, 'base64url');
    const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
    decipher.setAAD(Buffer.from(requestId));
    decipher.setAuthTag(raw.subarray(12, 28));
    return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
  } catch {
    return undefined;
  }
}

/**
 * The device's reply key: 32 random bytes it draws fresh for one provisioning request and sends, base64url
 * (43 characters, no padding), as `replyKey` in `provisioning/{requestId}/request`. Only the bridge and the
 * registry read request topics (the fleet-claim role may only publish there), so the key stays between the
 * device and the registry, while every claim holder can read every response topic.
 */
export const REPLY_KEY_BYTES = 32;

/**
 * The credential part of an accepted provisioning response, encrypted to the request's reply key:
 *
 * ```json
 * "credential": { "alg": "A256GCM", "iv": "<12 bytes>", "ciphertext": "<n bytes>", "tag": "<16 bytes>" }
 * ```
 *
 * `iv`, `ciphertext` and `tag` are base64url without padding. To decrypt, a device runs AES-256-GCM with
 * key = base64url-decode(replyKey), nonce = iv, additional authenticated data = the UTF-8 bytes of the
 * request id (the `{requestId}` topic level, also the response's `requestId`), and the 128-bit tag; the
 * plaintext is UTF-8 JSON `{"secret":"<the device's MQTT password>"}`. A tag mismatch means the response
 * was not made for this request and key: discard it. (Node: `createDecipheriv('aes-256-gcm', key, iv)`,
 * `setAAD`, `setAuthTag`; mbedTLS: `mbedtls_gcm_auth_decrypt`; see `openCredential` below.)
 */
export interface SealedCredential {
  alg: 'A256GCM';
  iv: string;
  ciphertext: string;
  tag: string;
}

export interface DeviceCredential {
  secret: string;
}

export function sealCredential(replyKey: Buffer, requestId: string, credential: DeviceCredential): SealedCredential {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', replyKey, iv);
  cipher.setAAD(Buffer.from(requestId, 'utf8'));
  const ciphertext = Buffer.concat([cipher.update(JSON.stringify(credential), 'utf8'), cipher.final()]);
  return {
    alg: 'A256GCM',
    iv: iv.toString('base64url'),
    ciphertext: ciphertext.toString('base64url'),
    tag: cipher.getAuthTag().toString('base64url'),
  };
}

/** What a device does with `credential`; `undefined` for another key, another request id or a forged reply. */
export function openCredential(
  replyKey: Buffer,
  requestId: string,
  sealed: SealedCredential,
): DeviceCredential | undefined {
  try {
    if (sealed.alg !== 'A256GCM') return undefined;
    // authTagLength pins the tag to 128 bits: GCM would otherwise accept a truncated tag (down to 32 bits).
    const decipher = createDecipheriv('aes-256-gcm', replyKey, Buffer.from(sealed.iv, 'base64url'), {
      authTagLength: 16,
    });
    decipher.setAAD(Buffer.from(requestId, 'utf8'));
    decipher.setAuthTag(Buffer.from(sealed.tag, 'base64url'));
    const plaintext = Buffer.concat([
      decipher.update(Buffer.from(sealed.ciphertext, 'base64url')),
      decipher.final(),
    ]).toString('utf8');
    const parsed = JSON.parse(plaintext) as { secret?: unknown };
    return typeof parsed.secret === 'string' ? { secret: parsed.secret } : undefined;
  } catch {
    return undefined;
  }
}

/** Binds a stored request to the key it came with (a digest: the key itself is never stored). */
export function replyKeyDigest(replyKey: Buffer): string {
  return createHash('sha256').update(replyKey).digest('base64url');
}
