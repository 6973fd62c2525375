import { Redis, type RedisOptions } from 'ioredis';
import { DependencyUnavailableError } from './errors.js';

export interface RedisHandle {
  /** The shared client, connected on first use and reused across invocations. */
  client(): Promise<Redis>;
  /**
   * Whether the keys of one multi-key command or script must share a hash slot (Redis Cluster spec, "Key
   * distribution model"). A standalone server takes any keys together; see `groupsForOneCall`.
   */
  readonly clustered: boolean;
  close(): Promise<void>;
}

/**
 * A lazily connected Redis client that fails fast while Redis is down (no offline queue, one retry per
 * command), so a handler answers 503 at once instead of hanging until Knative's timeout.
 */
export function createRedis(url: string, options: RedisOptions = {}): RedisHandle {
  let redis: Redis | undefined;
  let ready: Promise<Redis> | undefined;
  return {
    clustered: false,
    async client() {
      if (!redis) {
        redis = new Redis(url, {
          lazyConnect: true,
          enableOfflineQueue: false,
          maxRetriesPerRequest: 1,
          connectTimeout: 2_000,
          retryStrategy: (times) => Math.min(times * 100, 2_000),
          ...options,
        });
        // Connection errors surface on commands; the event only keeps them from being unhandled.
        redis.on('error', () => undefined);
      }
      const current = redis;
      if (current.status === 'ready') return current;
      if (!ready) {
        ready = (current.status === 'wait' ? current.connect() : waitReady(current)).then(
          () => {
            ready = undefined;
            return current;
          },
          (error: unknown) => {
            ready = undefined;
            throw new DependencyUnavailableError('redis', error);
          },
        );
      }
      return ready;
    },
    async close() {
      const current = redis;
      redis = undefined;
      if (current) await current.quit().catch(() => current.disconnect());
    },
  };
}

function waitReady(redis: Redis, timeoutMs = 2_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      redis.off('ready', onReady);
      reject(new Error(`redis not ready (${redis.status})`));
    }, timeoutMs);
    const onReady = () => {
      clearTimeout(timer);
      resolve();
    };
    redis.once('ready', onReady);
  });
}

/** Runs a Redis operation, turning a connection failure into a 503 so the event is retried. */
export async function withRedis<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    if (error instanceof DependencyUnavailableError) throw error;
    const message = error instanceof Error ? error.message : '';
    if (/Connection is closed|Stream isn't writeable|ECONNREFUSED|ETIMEDOUT|max retries|not ready/i.test(message)) {
      throw new DependencyUnavailableError('redis', error);
    }
    throw error;
  }
}

/**
 * Splits the items of a batch operation into the groups that can go into one command or script call: all of
 * them on a standalone server; on a cluster, the items whose keys carry the same hash tag (`{…}`, Redis
 * Cluster spec "Hash tags": the same tag is the same slot). The calls of one tick still share one round trip
 * (ioredis auto-pipelining).
 */
export function groupsForOneCall<T>(items: readonly T[], hashTagOf: (item: T) => string, clustered: boolean): T[][] {
  if (!clustered) return items.length === 0 ? [] : [[...items]];
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const tag = hashTagOf(item);
    const group = groups.get(tag);
    if (group) group.push(item);
    else groups.set(tag, [item]);
  }
  return [...groups.values()];
}
