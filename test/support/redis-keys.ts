import calculateSlot from 'cluster-key-slot';
import { Cluster } from 'ioredis';
import type { RedisClient } from '../../shared/redis.js';
import { uniqueName } from './services.js';

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

/**
 * `count` unique names (at most three) whose hash slots lie in different thirds of the 16,384 slots — the
 * ranges `redis-cli --cluster create` gives three masters — so that what a test does with them at once (a
 * batch of several devices, a bulk registration) spans every shard of the test Cluster: one command or
 * script per slot, on different nodes. On one node or Sentinel they are just unique names.
 */
export function namesOnDistinctShards(prefix: string, count: number): string[] {
  if (count > 3) throw new Error('three shards in the test Cluster');
  const names = new Map<number, string>();
  while (names.size < count) {
    const name = uniqueName(prefix);
    names.set(Math.floor(calculateSlot(name) / (16_384 / 3)), name);
  }
  return [...names.values()];
}
