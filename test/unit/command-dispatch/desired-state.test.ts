import { describe, expect, it } from 'vitest';
import { parseIfMatch } from '../../../functions/command-dispatch/desired-state.js';
import { applyDesired, applyReport, computeDelta, emptyShadow, mergePatch } from '../../../shared/shadow.js';

const limits = { maxBytes: 8192, maxDepth: 6 };

describe('desired state and its delta (shared/shadow.ts)', () => {
  it('merges desired patches by RFC 7386 (null removes, objects merge, the rest replaces)', () => {
    // RFC 7386 Appendix A examples.
    expect(mergePatch({ a: 'b' }, { a: 'c' })).toEqual({ a: 'c' });
    expect(mergePatch({ a: 'b' }, { a: null })).toEqual({});
    expect(mergePatch({ a: [{ b: 'c' }] }, { a: [1] })).toEqual({ a: [1] });
    expect(mergePatch({ e: null }, { a: 1 })).toEqual({ e: null, a: 1 });
    expect(mergePatch({ a: { b: 'c' } }, { a: { b: 'd', c: null } })).toEqual({ a: { b: 'd' } });
  });

  it('keeps in the delta only what differs from reported, and shrinks it as reports come', () => {
    let shadow = applyDesired(emptyShadow('d'), { led: 'on', fw: { v: 2, ch: 'beta' }, list: [1, 2] }, 1_000, limits);
    expect(shadow).toMatchObject({ version: 1, delta: { led: 'on', fw: { v: 2, ch: 'beta' }, list: [1, 2] } });
    expect(shadow.timestamps.desired).toEqual({ '/led': 1_000, '/fw/v': 1_000, '/fw/ch': 1_000, '/list': 1_000 });
    shadow = applyReport(shadow, { led: 'on', fw: { v: 2 }, list: [1, 2] }, 2_000, limits);
    expect(shadow).toMatchObject({ version: 2, delta: { fw: { ch: 'beta' } } });
    shadow = applyReport(shadow, { fw: { ch: 'beta' } }, 3_000, limits);
    expect(shadow.delta).toEqual({});
    // A new wish against what is reported.
    shadow = applyDesired(shadow, { led: 'off', list: null }, 4_000, limits);
    expect(shadow.delta).toEqual({ led: 'off' });
    expect(shadow.timestamps.desired['/list']).toBeUndefined();
  });

  it('computes deltas with arrays compared whole', () => {
    expect(computeDelta({ a: [1, 2] }, { a: [1, 2] })).toEqual({});
    expect(computeDelta({ a: [1, 2] }, { a: [2, 1] })).toEqual({ a: [1, 2] });
    expect(computeDelta({ a: { b: 1 } }, { a: 5 })).toEqual({ a: { b: 1 } });
  });

  it('refuses a desired document over the size limit', () => {
    expect(() => applyDesired(emptyShadow('d'), { a: 'x'.repeat(100) }, 0, { maxBytes: 64, maxDepth: 6 })).toThrow(
      /limit is 64/,
    );
  });

  it.each([
    [undefined, undefined],
    ['*', undefined],
    ['"7"', 7],
    ['W/"7"', 7],
    ['12', 12],
  ])('If-Match %s → %s', (header, version) => {
    expect(parseIfMatch(header)).toBe(version);
  });

  it('refuses an If-Match that is no version', () => {
    expect(() => parseIfMatch('"abc"')).toThrow(/If-Match/);
  });
});
