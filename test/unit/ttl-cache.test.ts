import { describe, expect, it } from 'vitest';
import { createTtlCache } from '../../shared/ttl-cache.js';

describe('createTtlCache', () => {
  it('keeps at most maxEntries, evicting the least recently used first', () => {
    const cache = createTtlCache<number>({ ttlMs: 60_000, maxEntries: 2 });
    cache.set('a', 1);
    cache.set('b', 2);
    expect(cache.get('a')).toEqual({ value: 1 }); // a is now the most recently used
    cache.set('c', 3);
    expect(cache.size).toBe(2);
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('a')).toEqual({ value: 1 });
    expect(cache.get('c')).toEqual({ value: 3 });
  });

  it('expires an entry ttlMs after it was stored, and remembers undefined as a value', () => {
    let now = 1_000;
    const cache = createTtlCache<string | undefined>({ ttlMs: 100, maxEntries: 10, now: () => now });
    cache.set('missing', undefined);
    expect(cache.get('missing')).toEqual({ value: undefined });
    now += 101;
    expect(cache.get('missing')).toBeUndefined();
  });

  it('caches nothing with a TTL of 0', () => {
    const cache = createTtlCache<number>({ ttlMs: 0, maxEntries: 10 });
    cache.set('a', 1);
    expect(cache.get('a')).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('allocates nothing up front for its bound (a cold start pays for entries, not for the maximum)', () => {
    // lru-cache's `max` would allocate arrays of this length at once (a RangeError here).
    const cache = createTtlCache<number>({ ttlMs: 60_000, maxEntries: Number.MAX_SAFE_INTEGER });
    cache.set('a', 1);
    expect(cache.get('a')).toEqual({ value: 1 });
    expect(cache.size).toBe(1);
  });
});
