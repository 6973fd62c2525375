import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DependencyUnavailableError } from '../../shared/errors.js';
import { createRedis, deleteKeys, groupsByNode, type RedisClient, withRedis } from '../../shared/redis.js';
import { luaScript } from '../../shared/redis-script.js';
import { REDIS_URL, uniqueName } from '../support/services.js';

// A script over many devices' keys (shared/redis-script.ts, groupsByNode in shared/redis.ts): one call for the
// whole batch on one node or Sentinel, one per master on a Cluster, whatever slots the keys hash to.
const SET_ALL = luaScript(`
for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[1] .. i) end
return #KEYS
`);

describe('Lua scripts over the keys of many devices', () => {
  const redis = createRedis(REDIS_URL);
  const prefix = uniqueName('scripts');
  const written: string[] = [];
  let client: RedisClient;
  // Sixty devices' keys, each with its device's hash tag: on a Cluster they spread over every master.
  const keysOf = (name: string) => Array.from({ length: 60 }, (_, i) => `${prefix}:{${name}-${i}}:k`);
  beforeAll(async () => {
    client = await redis.client();
  });
  afterAll(async () => {
    await deleteKeys(client, written);
    await redis.close();
  });

  it('runs once per master (once on one node) and touches every key of its group', async () => {
    const keys = keysOf('grouped');
    written.push(...keys);
    const groups = groupsByNode(client, keys, (key) => key);
    expect(groups).toHaveLength(client instanceof Cluster ? client.nodes('master').length : 1);
    const counts = await Promise.all(groups.map((group) => SET_ALL.run(client, group, ['v'])));
    expect(counts.reduce((sum: number, count) => sum + Number(count), 0)).toBe(keys.length);
    for (const group of groups) for (const [i, key] of group.entries()) expect(await client.get(key)).toBe(`v${i + 1}`);
  });

  it('refuses, as unavailable and before any write, a call over keys its node does not all serve', async () => {
    // All sixty keys in one call: on a Cluster they lie on several masters, as after a failover or a
    // resharding the client's slot map has not caught up with.
    const keys = keysOf('mixed');
    written.push(...keys);
    const call = withRedis(() => SET_ALL.run(client, keys, ['v']));
    if (client instanceof Cluster) {
      await expect(call).rejects.toBeInstanceOf(DependencyUnavailableError);
      expect(await Promise.all(keys.map((key) => client.exists(key)))).toEqual(keys.map(() => 0));
    } else {
      // One node serves every key: nothing to refuse.
      await expect(call).resolves.toBe(keys.length);
    }
  });
});
