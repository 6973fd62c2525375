import { createHash, randomBytes, type ScryptOptions, scrypt as scryptCallback, timingSafeEqual } from 'node:crypto';

/**
 * Secrets that kiot hands out (device credentials, API keys, provisioning claim tokens) and the only
 * form in which it stores them, a self-describing string, so the scheme can change without breaking old hashes:
 * - `scrypt$N$r$p$salt$hash` (RFC 7914; salt and hash base64url): API keys, and device secrets stored before.
 * - `sha256$salt$hash`: secrets kiot generates itself with ≥ 128 bits from the CSPRNG (device credentials,
 *   claim tokens). A slow KDF protects guessable secrets from offline guessing; a 256-bit random secret cannot
 *   be guessed at any hash speed (2^255 tries on average), so one salted SHA-256 is as strong and costs ~1 µs
 *   instead of ~8 ms: NIST SP 800-63B §5.1.2.2 lets look-up secrets of ≥ 112 bits be stored with a single
 *   approved hash. This is what lets a bulk registration of 10,000 devices hash in milliseconds.
 */

/** 2^14 = 16 MiB per hash at r=8 (RFC 7914 §2's interactive-login figure): for API keys, verified once then cached. */
export const DEFAULT_SCRYPT_N = 2 ** 14;
/**
 * 2^12 for machine-generated secrets of ≥128 bits (device credentials, claim tokens). Their entropy, not the
 * KDF's cost, is what defeats guessing (2^128 candidates); scrypt only keeps a leaked hash from being a
 * usable credential. At ~8 ms per hash a 1,000-device bulk registration stays within seconds.
 */
export const DEVICE_SCRYPT_N = 2 ** 12;

const KEY_LENGTH = 32;
const SALT_BYTES = 16;

export interface ScryptCost {
  N: number;
  r?: number;
  p?: number;
}

function scrypt(secret: string, salt: Buffer, keyLength: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // Async on purpose: crypto.scrypt runs on the libuv threadpool, so hashes of a bulk call run in parallel
    // (UV_THREADPOOL_SIZE, default 4) and the event loop keeps serving requests.
    scryptCallback(secret, salt, keyLength, options, (error, key) => (error ? reject(error) : resolve(key)));
  });
}

function maxmemFor(N: number, r: number, p: number): number {
  // Node refuses when 128·N·r·p exceeds maxmem (32 MiB by default); leave headroom for larger costs.
  return 128 * N * r * p + 16 * 1024 * 1024;
}

/** A random secret of `bytes` bytes (default 32 = 256 bits; never below 16 = 128 bits), base64url. */
export function generateSecret(bytes = 32): string {
  if (bytes < 16) throw new RangeError('a secret needs at least 128 bits');
  return randomBytes(bytes).toString('base64url');
}

/** `sha256$salt$hash` of a secret from `generateSecret` (never of a password a person chose). */
export function hashGeneratedSecret(secret: string): string {
  const salt = randomBytes(SALT_BYTES);
  const hash = createHash('sha256').update(salt).update(secret).digest();
  return ['sha256', salt.toString('base64url'), hash.toString('base64url')].join('$');
}

function verifyGenerated(secret: string, stored: string): boolean {
  const parts = stored.split('$');
  if (parts.length !== 3) return false;
  const salt = Buffer.from(parts[1]!, 'base64url');
  const hash = Buffer.from(parts[2]!, 'base64url');
  if (salt.length < 8 || hash.length !== 32) return false;
  return timingSafeEqual(createHash('sha256').update(salt).update(secret).digest(), hash);
}

/** Hashes a secret with a fresh random salt: `scrypt$N$r$p$salt$hash`. */
export async function hashSecret(secret: string, cost: ScryptCost = { N: DEFAULT_SCRYPT_N }): Promise<string> {
  const { N, r = 8, p = 1 } = cost;
  const salt = randomBytes(SALT_BYTES);
  const hash = await scrypt(secret, salt, KEY_LENGTH, { N, r, p, maxmem: maxmemFor(N, r, p) });
  return ['scrypt', N, r, p, salt.toString('base64url'), hash.toString('base64url')].join('$');
}

interface ParsedHash {
  N: number;
  r: number;
  p: number;
  salt: Buffer;
  hash: Buffer;
}

/** Parses a stored hash; `undefined` when it is not one of ours (never throws on stored data). */
export function parseSecretHash(stored: string): ParsedHash | undefined {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return undefined;
  const [N, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  const valid = (n: number) => Number.isInteger(n) && n > 0;
  // N must be a power of two > 1 (RFC 7914 §2); cap the cost so a tampered record cannot exhaust memory.
  if (!valid(N) || !valid(r) || !valid(p) || N < 2 || (N & (N - 1)) !== 0 || N > 2 ** 20 || r > 32 || p > 16)
    return undefined;
  const salt = Buffer.from(parts[4]!, 'base64url');
  const hash = Buffer.from(parts[5]!, 'base64url');
  if (salt.length < 8 || hash.length < 16) return undefined;
  return { N, r, p, salt, hash };
}

/** Whether `secret` matches `stored` (either scheme), compared in constant time (crypto.timingSafeEqual). */
export async function verifySecret(secret: string, stored: string): Promise<boolean> {
  if (stored.startsWith('sha256$')) return verifyGenerated(secret, stored);
  const parsed = parseSecretHash(stored);
  if (!parsed) return false;
  const { N, r, p, salt, hash } = parsed;
  const candidate = await scrypt(secret, salt, hash.length, { N, r, p, maxmem: maxmemFor(N, r, p) });
  return timingSafeEqual(candidate, hash);
}
