import { LRUCache } from 'lru-cache';

/**
 * A bounded in-process cache whose entries expire `ttlMs` after they were stored: `lru-cache` with the
 * two things every caller here needs on top. A remembered "not found" is a value too (lru-cache cannot
 * hold `undefined`, so entries are boxed), and a TTL of 0 means "cache nothing" (to lru-cache it means
 * "never expire"). When full, the least recently used entry goes, never the whole cache.
 */
export interface TtlCache<T> {
  /** The stored value in a box, or undefined when absent or expired. */
  get(key: string): { value: T } | undefined;
  set(key: string, value: T): void;
  /** How long the entry has left (ms); 0 when absent or expired. */
  remainingMs(key: string): number;
  readonly size: number;
}

export function createTtlCache<T>(options: { ttlMs: number; maxEntries: number; now?: () => number }): TtlCache<T> {
  if (options.ttlMs <= 0) return { get: () => undefined, set: () => {}, remainingMs: () => 0, size: 0 };
  const cache = new LRUCache<string, { value: T }>({
    // The bound as a size of one per entry, not lru-cache's `max`: `max` allocates its arrays for every entry up
    // front (100,000 entries with a TTL: ~3 MB and tens of milliseconds of a cold start, per cache), while a
    // `maxSize` cache grows with what it holds. Eviction is the same: least recently used first.
    maxSize: options.maxEntries,
    sizeCalculation: () => 1,
    ttl: options.ttlMs,
    // An injected clock (tests, and the composition root's `now`) is read on every lookup, as lru-cache
    // otherwise memoises the time for `ttlResolution` ms.
    ...(options.now ? { perf: { now: options.now }, ttlResolution: 0 } : {}),
  });
  return {
    get: (key) => cache.get(key),
    set: (key, value) => {
      cache.set(key, { value });
    },
    remainingMs: (key) => Math.max(0, cache.getRemainingTTL(key)),
    get size() {
      return cache.size;
    },
  };
}
