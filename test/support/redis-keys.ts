import { Cluster } from 'ioredis';
import type { RedisClient } from '../../shared/redis.js';

/**
 * Every key matching `pattern`, with SCAN (never KEYS) on every master: on a Cluster each master holds
 * only its own slots' keys, and a command without a key reaches just one node.
 */
export async function scanKeys(client: RedisClient, pattern: string): Promise<string[]> {
  const nodes = client instanceof Cluster ? client.nodes('master') : [client];
  const found = await Promise.all(
    nodes.map(async (node) => {
      const keys: string[] = [];
      for await (const batch of node.scanStream({ match: pattern, count: 1000 })) keys.push(...(batch as string[]));
      return keys;
    }),
  );
  return [...new Set(found.flat())];
}
