import calculateSlot from 'cluster-key-slot';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { DependencyUnavailableError } from './errors.js';
import { parseRedisUrl, type RedisTopology } from './redis-topology.js';

/** A connection to whichever deployment `REDIS_URL` names; both speak every command kiot uses. */
export type RedisClient = Redis | Cluster;

export interface RedisHandle {
  /** The shared client, connected on first use and reused across invocations. */
  client(): Promise<RedisClient>;
  /**
   * Whether REDIS_URL names a Cluster: the keys of one multi-key command or script must then share a hash
   * slot (Redis Cluster spec, "Key distribution model"); see `groupsForOneCall`. One node or Sentinel take
   * any keys together.
   */
  readonly clustered: boolean;
  close(): Promise<void>;
}

export interface RedisHandleOptions {
  /** Commands of concurrent invocations issued in one tick share one write (ioredis auto-pipelining). */
  autoPipelining?: boolean;
  /** This client will SSUBSCRIBE on a Cluster: one subscriber connection per master (ioredis). */
  shardedSubscriber?: boolean;
  connectTimeoutMs?: number;
  /** false: a lost connection is not re-established (tests of an unreachable server). */
  reconnect?: boolean;
}

/**
 * A lazily connected Redis client that fails fast while Redis (or the part of a Cluster holding a key) is
 * down: no offline queue, one retry per command, so a handler answers 503 at once instead of hanging until
 * Knative's timeout. Sentinel and Cluster clients follow a failover by themselves (ioredis).
 */
export function createRedis(url: string, options: RedisHandleOptions = {}): RedisHandle {
  const topology = parseRedisUrl(url);
  let redis: RedisClient | undefined;
  let ready: Promise<RedisClient> | undefined;
  return {
    clustered: topology.kind === 'cluster',
    async client() {
      if (!redis) {
        redis = connect(topology, options);
        // Connection errors surface on commands; the events only keep them from being unhandled.
        redis.on('error', () => undefined);
        redis.on('node error', () => undefined);
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

function connect(topology: RedisTopology, options: RedisHandleOptions): RedisClient {
  const connectTimeout = options.connectTimeoutMs ?? 2_000;
  const retryStrategy = (times: number) => (options.reconnect === false ? null : Math.min(times * 100, 2_000));
  const node = {
    connectTimeout,
    maxRetriesPerRequest: 1,
    // A master demoted by a failover answers writes with READONLY: reconnect, and Sentinel names the new one.
    reconnectOnError: (error: Error) => error.message.startsWith('READONLY'),
  } satisfies RedisOptions;
  const common = {
    lazyConnect: true,
    enableOfflineQueue: false,
    enableAutoPipelining: options.autoPipelining ?? false,
  };
  if (topology.kind === 'single') return new Redis(topology.url, { ...node, ...common, retryStrategy });
  const tls = topology.tls ? {} : undefined;
  const auth = { username: topology.username, password: topology.password, tls };
  if (topology.kind === 'sentinel') {
    return new Redis({
      ...node,
      ...common,
      ...auth,
      retryStrategy,
      sentinels: topology.sentinels,
      name: topology.masterName,
      db: topology.db,
      sentinelUsername: topology.sentinelUsername,
      sentinelPassword: topology.sentinelPassword,
      enableTLSForSentinelMode: topology.tls,
      sentinelTLS: tls,
      // Follow +switch-master from the sentinels instead of waiting for the old master's socket to die.
      failoverDetector: true,
      sentinelRetryStrategy: retryStrategy,
    });
  }
  return new Cluster(topology.nodes, {
    ...common,
    redisOptions: { ...node, ...auth },
    // Over TLS, connect by the names the nodes announce so certificates match (ioredis README, "Special
    // Note: Aws Elasticache Clusters with TLS").
    ...(topology.tls
      ? { dnsLookup: (address: string, callback: (e: null, a: string) => void) => callback(null, address) }
      : {}),
    clusterRetryStrategy: retryStrategy,
    shardedSubscribers: options.shardedSubscriber ?? false,
    slotsRefreshTimeout: connectTimeout,
    // ioredis refreshes its slot map on a redirection it follows, but not on a MOVED it hands back (an
    // auto-pipeline mixing commands, Pipeline#fillResult; that one is a 503): a periodic refresh heals the map
    // after a failover whatever path the commands took (off by default in ioredis 5).
    slotsRefreshInterval: 5_000,
  });
}

function waitReady(redis: RedisClient, timeoutMs = 2_000): Promise<void> {
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

/**
 * Replies and client errors that mean "Redis, or the shard holding this key, cannot answer right now"
 * (a failover in progress, a node down or still loading) rather than a bad command: retry later (503).
 */
const UNAVAILABLE_REPLY = /^(CLUSTERDOWN|TRYAGAIN|MASTERDOWN|LOADING|READONLY|NOREPLICAS|MOVED|ASK)\b/;
const UNAVAILABLE_CLIENT = new RegExp(
  [
    'Connection is closed',
    "Stream isn't writeable",
    'ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE',
    'max retries',
    "not ready|isn't ready",
    'Too many Cluster redirections',
    'None of startup nodes',
    'Failed to refresh slots cache',
    'All sentinels are unreachable',
    'No (sharded )?subscriber',
    'Cluster is ended',
    // A script over several slots of one master (redis-script.ts) meeting a key its node no longer serves.
    'Script attempted to (access a non local key|execute a (write )?command while the cluster is down)',
  ].join('|'),
  'i',
);
const UNAVAILABLE_NAMES = new Set(['MaxRetriesPerRequestError', 'ClusterAllFailedError', 'AbortError']);

export function isRedisUnavailable(error: unknown): boolean {
  if (error instanceof DependencyUnavailableError) return true;
  if (!(error instanceof Error)) return false;
  return (
    UNAVAILABLE_NAMES.has(error.name) || UNAVAILABLE_REPLY.test(error.message) || UNAVAILABLE_CLIENT.test(error.message)
  );
}

/** Runs a Redis operation, turning "Redis cannot answer now" into a 503 so the event is retried. */
export async function withRedis<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    if (error instanceof DependencyUnavailableError) throw error;
    if (isRedisUnavailable(error)) throw new DependencyUnavailableError('redis', error);
    throw error;
  }
}

/**
 * Splits the items of a batch operation into the groups that can go into one command or script call: all of
 * them on a standalone server; on a cluster, the items whose keys carry the same hash tag (`{…}`, Redis
 * Cluster spec "Hash tags": the same tag is the same slot) or lie in the same slot. The calls of one tick
 * still share one round trip per node (ioredis auto-pipelining).
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

/**
 * Splits the items of a batch into the groups one Lua script call takes (`luaScript`, shared/redis-script.ts):
 * all of them on one node or Sentinel; on a Cluster, the items whose key (`keyOf`: every key of an item shares
 * its hash tag) one master serves, by the client's slot map — as many calls as masters, however many devices a
 * batch holds. A map gone stale after a failover or a resharding fails the call as unavailable (503, retried)
 * until the client's periodic refresh (`slotsRefreshInterval`) or a redirection heals it.
 */
export function groupsByNode<T>(client: RedisClient, items: readonly T[], keyOf: (item: T) => string): T[][] {
  if (!(client instanceof Cluster)) return groupsForOneCall(items, () => '', false);
  return groupsForOneCall(
    items,
    (item) => {
      const slot = calculateSlot(keyOf(item));
      return client.slots[slot]?.[0] ?? `slot ${slot}`;
    },
    true,
  );
}

/** The hash slot of a key as a group name for `groupsForOneCall` (CRC16 of its hash tag, or of the key). */
export const slotOf = (key: string) => String(calculateSlot(key));

/** DEL of many keys: one command per hash slot, concurrently (one command on a single node or Sentinel). */
export async function deleteKeys(client: RedisClient, keys: readonly string[]): Promise<number> {
  const groups = groupsForOneCall(keys, slotOf, client instanceof Cluster);
  const counts = await Promise.all(groups.map((group) => client.del(...group)));
  return counts.reduce((sum, count) => sum + count, 0);
}
