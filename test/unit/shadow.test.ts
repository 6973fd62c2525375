import { describe, expect, it } from 'vitest';
import {
  applyReport,
  checkStatePatch,
  computeDelta,
  emptyShadow,
  mergePatch,
  touchTimestamps,
} from '../../shared/shadow.js';

describe('shared/shadow.ts: state logic', () => {
  it('merges as RFC 7386 says (its appendix A examples)', () => {
    const cases: [unknown, unknown, unknown][] = [
      [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
      [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
      [{ a: 'b' }, { a: null }, {}],
      [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
      [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
      [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
      [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
      [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
      [{ e: null }, { a: 1 }, { e: null, a: 1 }],
      [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
    ];
    for (const [target, patch, result] of cases) expect(mergePatch(target, patch)).toEqual(result);
  });

  it('stamps leaves by JSON pointer and drops stamps of removed or replaced subtrees', () => {
    let stamps = touchTimestamps({}, { a: { b: 1, c: 2 }, 'x/y': 1 }, 10);
    expect(stamps).toEqual({ '/a/b': 10, '/a/c': 10, '/x~1y': 10 });
    stamps = touchTimestamps(stamps, { a: { c: null }, 'x/y': { z: 1 } }, 20);
    expect(stamps).toEqual({ '/a/b': 10, '/x~1y/z': 20 });
    expect(touchTimestamps(stamps, { a: 5 }, 30)).toEqual({ '/a': 30, '/x~1y/z': 20 });
  });

  it('computes the delta of desired against reported', () => {
    expect(computeDelta({ a: 1, b: { c: 2, d: 3 }, e: [1] }, { a: 1, b: { c: 2, d: 4 }, e: [1] })).toEqual({
      b: { d: 3 },
    });
    expect(computeDelta({ a: { b: 1 } }, { a: 5 })).toEqual({ a: { b: 1 } });
  });

  it('refuses $ and . keys at any depth, too deep nesting and results over the size limit', () => {
    const limits = { maxBytes: 40, maxDepth: 2 };
    expect(() => checkStatePatch({ a: [{ $x: 1 }] }, limits)).toThrow(/cannot be stored/);
    expect(() => checkStatePatch({ 'a.b': 1 }, limits)).toThrow(/cannot be stored/);
    expect(() => checkStatePatch({ a: { b: { c: 1 } } }, limits)).toThrow(/cannot be stored/);
    expect(() => checkStatePatch('x', limits)).toThrow(/JSON object/);
    expect(() => checkStatePatch({ a: { b: 1 } }, limits)).not.toThrow();
    expect(() => applyReport(emptyShadow('d'), { a: 'x'.repeat(50) }, 1, limits)).toThrow(/limit is 40/);
  });

  it.each([
    ['{"t":1e999}', 'non_finite_number', 't'],
    ['{"a":[-1e999]}', 'non_finite_number', 'a.0'],
    ['{"__proto__":{"polluted":true}}', 'prototype_key', '__proto__'],
    ['{"a":{"constructor":{"prototype":{}}}}', 'prototype_key', 'a.constructor'],
    ['{"prototype":1}', 'prototype_key', 'prototype'],
    ['{"s":"\\udbff"}', 'invalid_unicode', 's'],
    // BSON field names are C strings: the driver would refuse the whole write (a 500).
    ['{"a":{"x\\u0000y":1}}', 'null_character', 'a.x\u0000y'],
  ])('refuses %s, which would not round-trip through JSON: %s at %s', (text, code, path) => {
    const limits = { maxBytes: 1000, maxDepth: 4 };
    let refusal: unknown;
    try {
      checkStatePatch(JSON.parse(text), limits);
    } catch (error) {
      refusal = error;
    }
    expect(refusal).toMatchObject({ status: 400, code: 'invalid_state', details: [{ path, code }] });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('increments the version once per accepted report', () => {
    const limits = { maxBytes: 1000, maxDepth: 4 };
    const one = applyReport(emptyShadow('d'), { a: 1 }, 5, limits);
    const two = applyReport(one, { b: 2 }, 6, limits);
    expect([one.version, two.version]).toEqual([1, 2]);
    expect(two).toMatchObject({ reported: { a: 1, b: 2 }, updatedAt: new Date(6).toISOString() });
  });
});
