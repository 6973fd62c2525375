import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DependencyUnavailableError } from '../../shared/errors.js';
import { createRedis, deleteKeys, groupsByNode, type RedisClient, withRedis } from '../../shared/redis.js';
import { type LuaScript, luaScript } from '../../shared/redis-script.js';
import { REDIS_URL, uniqueName } from '../support/services.js';

// A script over many devices' keys (shared/redis-script.ts, groupsByNode in shared/redis.ts): one call for the
// whole batch on one node or Sentinel, one per master on a Cluster, whatever slots the keys hash to.
const SET_ALL = luaScript(`
for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[1] .. i) end
return #KEYS
`);

// The same, reading every key before its first write: on a Cluster those reads are the probe (`probe: false`).
const READ_THEN_SET = luaScript(
  `
for i = 1, #KEYS do redis.call('GET', KEYS[i]) end
for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[1] .. i) end
return #KEYS
`,
  { probe: false },
);

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

  /** One call per master over `keys` runs; all of `others` in one call is refused on a Cluster with nothing written. */
  async function runsGroupedRefusesMixed(script: LuaScript, keys: string[], others: string[]) {
    written.push(...keys, ...others);
    const groups = groupsByNode(client, keys, (key) => key);
    const counts = await Promise.all(groups.map((group) => script.run(client, group, ['v'])));
    expect(counts.reduce((sum: number, count) => sum + Number(count), 0)).toBe(keys.length);
    const call = withRedis(() => script.run(client, others, ['v']));
    if (client instanceof Cluster) {
      await expect(call).rejects.toBeInstanceOf(DependencyUnavailableError);
      expect(await Promise.all(others.map((key) => client.exists(key)))).toEqual(others.map(() => 0));
    } else await expect(call).resolves.toBe(others.length);
  }

  it('probes one key per hash tag: several keys of a device, refused before any write when off its node', async () => {
    // Three keys per device (one tag), sixty devices.
    const keysOf3 = (name: string) =>
      Array.from({ length: 60 }, (_, i) => [0, 1, 2].map((k) => `${prefix}:{${name}-${i}}:k${k}`)).flat();
    await runsGroupedRefusesMixed(SET_ALL, keysOf3('tagged'), keysOf3('tagged-all'));
  });

  it('runs a script without the probe, whose own reads refuse a call off its node before any write', async () => {
    await runsGroupedRefusesMixed(READ_THEN_SET, keysOf('reads-first'), keysOf('reads-first-all'));
  });
});
