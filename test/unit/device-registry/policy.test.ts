import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { accessDecision, connectDecision, topicAllowed } from '../../../functions/device-registry/broker-policy.js';
import {
  openCredential,
  openReply,
  replyKeyDigest,
  sealCredential,
  sealReply,
} from '../../../functions/device-registry/reply-crypto.js';
import {
  provisioningRequestSchema,
  registerDeviceSchema,
  updateDeviceSchema,
} from '../../../functions/device-registry/schema.js';
import { parseClaimToken } from '../../../functions/device-registry/use-cases/provisioning-tokens.js';
import { decodeCursor, encodeCursor } from '../../../functions/device-registry/use-cases/query-devices.js';
import { newDevice } from '../../../functions/device-registry/use-cases/register-device.js';
import { requiredVersion, toView } from '../../../functions/device-registry/view.js';
import { toProblem } from '../../../shared/errors.js';

const statusOf = (fn: () => unknown) => {
  try {
    fn();
    return 200;
  } catch (error) {
    return toProblem(error).status;
  }
};

describe('device-registry pure logic', () => {
  it('keeps topics within devices/{id}/ for publish and subscribe', () => {
    expect(topicAllowed('d1', 'devices/d1/telemetry', 'publish')).toBe(true);
    expect(topicAllowed('d1', 'devices/d1/commands/#', 'subscribe')).toBe(true);
    expect(topicAllowed('d1', 'devices/d1/#', 'subscribe')).toBe(true);
    expect(topicAllowed('d1', 'devices/d1/#', 'publish')).toBe(false);
    expect(topicAllowed('d1', 'devices/d1/a#', 'subscribe')).toBe(false);
    expect(topicAllowed('d1', 'devices/d1/#/x', 'subscribe')).toBe(false);
    expect(topicAllowed('d1', 'devices/d1', 'publish')).toBe(false);
    expect(topicAllowed('d1', 'devices/d1/', 'publish')).toBe(false);
    expect(topicAllowed('d1', 'devices/d10/telemetry', 'publish')).toBe(false);
    expect(topicAllowed('d1', 'devices/+/telemetry', 'subscribe')).toBe(false);
  });

  it('decides connect and access from status, client id and secret', () => {
    expect(connectDecision({ status: 'active', clientIdMatches: true, secretMatches: true })).toBe('allow');
    expect(connectDecision({ status: 'disabled', clientIdMatches: true, secretMatches: true })).toBe('deny');
    expect(connectDecision({ status: 'active', clientIdMatches: false, secretMatches: true })).toBe('deny');
    expect(connectDecision({ status: 'missing', clientIdMatches: true, secretMatches: false })).toBe('ignore');
    expect(accessDecision({ status: 'active', id: 'd', clientid: 'd', topic: 'devices/d/x', action: 'all' })).toBe(
      'allow',
    );
    expect(accessDecision({ status: 'disabled', id: 'd', clientid: 'd', topic: 'devices/d/x', action: 'all' })).toBe(
      'deny',
    );
  });

  it('requires If-Match (428) and parses strong and weak ETags', () => {
    expect(statusOf(() => requiredVersion(undefined))).toBe(428);
    expect(statusOf(() => requiredVersion('*'))).toBe(400);
    expect(requiredVersion('"7"')).toBe(7);
    expect(requiredVersion('W/"7"')).toBe(7);
  });

  it('round-trips opaque cursors and refuses foreign ones', () => {
    expect(decodeCursor(encodeCursor('dev-9'))).toBe('dev-9');
    expect(statusOf(() => decodeCursor('bm90LWpzb24'))).toBe(400);
  });

  it('seals provisioning replies bound to their request id', () => {
    const key = randomBytes(32);
    const sealed = sealReply(key, 'req-1', '{"secret":"s"}');
    expect(sealed).not.toContain('secret');
    expect(openReply(key, 'req-1', sealed)).toBe('{"secret":"s"}');
    expect(openReply(key, 'req-2', sealed)).toBeUndefined();
    expect(openReply(randomBytes(32), 'req-1', sealed)).toBeUndefined();
  });

  it('encrypts the provisioning credential to the reply key, bound to the request id (AES-256-GCM)', () => {
    const key = randomBytes(32);
    const sealed = sealCredential(key, 'req-1', { secret: 'the-secret' });
    expect(sealed).toMatchObject({ alg: 'A256GCM' });
    expect(Buffer.from(sealed.iv, 'base64url')).toHaveLength(12);
    expect(Buffer.from(sealed.tag, 'base64url')).toHaveLength(16);
    expect(JSON.stringify(sealed)).not.toContain('the-secret');
    expect(openCredential(key, 'req-1', sealed)).toEqual({ secret: 'the-secret' });
    // Another key, another request id, a flipped bit, a truncated tag: nothing.
    expect(openCredential(randomBytes(32), 'req-1', sealed)).toBeUndefined();
    expect(openCredential(key, 'req-2', sealed)).toBeUndefined();
    const flipped = Buffer.from(sealed.ciphertext, 'base64url');
    flipped[0]! ^= 1;
    expect(openCredential(key, 'req-1', { ...sealed, ciphertext: flipped.toString('base64url') })).toBeUndefined();
    expect(
      openCredential(key, 'req-1', {
        ...sealed,
        tag: Buffer.from(sealed.tag, 'base64url').subarray(0, 4).toString('base64url'),
      }),
    ).toBeUndefined();
    // A fresh IV each time: the same secret never gives the same ciphertext.
    expect(sealCredential(key, 'req-1', { secret: 'the-secret' }).ciphertext).not.toBe(sealed.ciphertext);
    expect(replyKeyDigest(key)).not.toContain(key.toString('base64url'));
  });

  it('requires a 32-byte base64url reply key in provisioning requests', () => {
    const claimToken = `kpt_0123456789abcdef_${'a'.repeat(43)}`;
    const issues = (data: unknown) => {
      const parsed = provisioningRequestSchema.safeParse(data);
      return parsed.success ? [] : parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    };
    expect(issues({ claimToken, replyKey: randomBytes(32).toString('base64url') })).toEqual([]);
    expect(issues({ claimToken })).toEqual([expect.stringMatching(/^replyKey: replyKey is required/)]);
    expect(issues({ claimToken, replyKey: randomBytes(16).toString('base64url') })).toHaveLength(1);
    expect(issues({ claimToken, replyKey: `${randomBytes(32).toString('base64').replace(/=+$/, '')}=` })).toHaveLength(
      1,
    );
  });

  it('parses claim tokens and builds device documents without leaking the hash', () => {
    expect(parseClaimToken(`kpt_0123456789abcdef_${'a'.repeat(43)}`)).toEqual({
      tokenId: '0123456789abcdef',
      secret: 'a'.repeat(43),
    });
    expect(parseClaimToken('kpt_short_x')).toBeUndefined();
    const now = new Date('2026-01-01T00:00:00Z');
    const doc = newDevice(registerDeviceSchema.parse({ id: 'd1', tags: ['a'] }), 'scrypt$hash', now);
    expect(doc).toMatchObject({ _id: 'd1', status: 'active', version: 1, brokerSynced: false, metadata: {} });
    expect(JSON.stringify(toView(doc))).not.toContain('scrypt');
    expect(newDevice(registerDeviceSchema.parse({}), 'h', now)._id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('validates registration and patch bodies strictly', () => {
    expect(registerDeviceSchema.safeParse({ metadata: { ok: { deep: [1, { fine: true }] } } }).success).toBe(true);
    expect(registerDeviceSchema.safeParse({ metadata: { a: { $b: 1 } } }).success).toBe(false);
    expect(registerDeviceSchema.safeParse({ secret: 'mine' }).success).toBe(false);
    expect(updateDeviceSchema.safeParse({}).success).toBe(false);
    expect(updateDeviceSchema.safeParse({ status: 'gone' }).success).toBe(false);
  });
});
