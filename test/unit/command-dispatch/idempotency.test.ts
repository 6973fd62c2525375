import { describe, expect, it } from 'vitest';
import { idempotentCommandId, requestDigestOf } from '../../../functions/command-dispatch/idempotency.js';
import { commandIdSchema } from '../../../functions/command-dispatch/schema.js';

describe('idempotency keys', () => {
  it('name one command per device and key, in the id alphabet topics accept', () => {
    const id = idempotentCommandId('dev-1', 'k');
    expect(idempotentCommandId('dev-1', 'k')).toBe(id);
    expect(idempotentCommandId('dev-2', 'k')).not.toBe(id);
    expect(idempotentCommandId('dev-1', 'k2')).not.toBe(id);
    // The pair is encoded unambiguously: ("a", "b\nc") and ("a\nb", "c") stay apart.
    expect(idempotentCommandId('a', 'b\nc')).not.toBe(idempotentCommandId('a\nb', 'c'));
    expect(commandIdSchema.safeParse(id).success).toBe(true);
  });

  it('digest what was asked, not how long the caller waits nor the order of its keys', () => {
    const digest = requestDigestOf({ name: 'set', params: { a: 1, b: [1, { c: 2, d: 3 }] }, ttlSeconds: 60 });
    expect(requestDigestOf({ ttlSeconds: 60, params: { b: [1, { d: 3, c: 2 }], a: 1 }, name: 'set', wait: 5 })).toBe(
      digest,
    );
    expect(requestDigestOf({ name: 'set', params: { a: 1, b: [{ c: 2, d: 3 }, 1] }, ttlSeconds: 60 })).not.toBe(digest);
    expect(requestDigestOf({ name: 'set', params: { a: 1, b: [1, { c: 2, d: 3 }] }, ttlSeconds: 61 })).not.toBe(digest);
    expect(requestDigestOf({ name: 'set', params: { a: 1, b: [1, { c: 2, d: 3 }] } })).not.toBe(digest);
  });
});
