import { describe, expect, it } from 'vitest';
import {
  DEVICE_SCRYPT_N,
  generateSecret,
  hashGeneratedSecret,
  hashSecret,
  parseSecretHash,
  verifySecret,
} from '../../../shared/secrets.js';

describe('secrets', () => {
  it('generates ≥128-bit base64url secrets that differ', () => {
    const a = generateSecret();
    const b = generateSecret(16);
    expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(b, 'base64url')).toHaveLength(16);
    expect(a).not.toBe(generateSecret());
    expect(() => generateSecret(8)).toThrow(RangeError);
  });

  it('hashes with a fresh salt into scrypt$N$r$p$salt$hash and verifies', async () => {
    const secret = generateSecret();
    const one = await hashSecret(secret, { N: DEVICE_SCRYPT_N });
    const two = await hashSecret(secret, { N: DEVICE_SCRYPT_N });
    expect(one).toMatch(/^scrypt\$4096\$8\$1\$[A-Za-z0-9_-]+\$[A-Za-z0-9_-]+$/);
    expect(one).not.toBe(two);
    expect(await verifySecret(secret, one)).toBe(true);
    expect(await verifySecret(secret, two)).toBe(true);
    expect(await verifySecret(`${secret}x`, one)).toBe(false);
  });

  it('verifies hashes of another cost (the cost travels with the hash)', async () => {
    const stored = await hashSecret('s3cret-s3cret-s3cret', { N: 2 ** 10, r: 4, p: 2 });
    expect(parseSecretHash(stored)).toMatchObject({ N: 1024, r: 4, p: 2 });
    expect(await verifySecret('s3cret-s3cret-s3cret', stored)).toBe(true);
  });

  it('refuses malformed or abusive stored hashes without throwing', async () => {
    for (const stored of [
      '',
      'plain',
      'scrypt$3$8$1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA',
      `scrypt$${2 ** 24}$8$1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA`,
      'bcrypt$1$2$3$4$5',
    ]) {
      expect(parseSecretHash(stored)).toBeUndefined();
      expect(await verifySecret('x', stored)).toBe(false);
    }
  });

  it('stores generated secrets as salted SHA-256 that only the secret verifies', async () => {
    const secret = generateSecret();
    const one = hashGeneratedSecret(secret);
    expect(one).toMatch(/^sha256\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
    expect(hashGeneratedSecret(secret)).not.toBe(one);
    expect(await verifySecret(secret, one)).toBe(true);
    expect(await verifySecret(`${secret}x`, one)).toBe(false);
    expect(await verifySecret(secret, 'sha256$AAAA$BBBB')).toBe(false);
  });
});
