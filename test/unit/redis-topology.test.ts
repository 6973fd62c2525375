import { describe, expect, it } from 'vitest';
import { baseConfigSchema, ConfigError, loadConfig, redisFields } from '../../shared/config.js';
import { DependencyUnavailableError } from '../../shared/errors.js';
import { groupsForOneCall, isRedisUnavailable, slotOf, withRedis } from '../../shared/redis.js';
import { parseRedisUrl } from '../../shared/redis-topology.js';

describe('REDIS_URL topologies', () => {
  it('keeps a one-node URL as it is, for ioredis to parse', () => {
    expect(parseRedisUrl('redis://:s3cret@redis.kiot.svc:6379/2')).toEqual({
      kind: 'single',
      url: 'redis://:s3cret@redis.kiot.svc:6379/2',
    });
    expect(parseRedisUrl('rediss://cache.example.com')).toMatchObject({ kind: 'single' });
  });

  it('reads Sentinel addresses, the master name, credentials and sentinel options', () => {
    expect(
      parseRedisUrl(
        'redis-sentinel://app:p%40ss@s1.kiot.svc:26379,s2.kiot.svc,[::1]:26380/kiot-main?db=3&sentinelPassword=w%2Fx',
      ),
    ).toEqual({
      kind: 'sentinel',
      sentinels: [
        { host: 's1.kiot.svc', port: 26379 },
        { host: 's2.kiot.svc', port: 26379 },
        { host: '::1', port: 26380 },
      ],
      masterName: 'kiot-main',
      db: 3,
      tls: false,
      username: 'app',
      password: 'p@ss',
      sentinelPassword: 'w/x',
    });
  });

  it('reads Cluster seed nodes, with TLS for rediss-cluster and the classic password-only form', () => {
    expect(parseRedisUrl('rediss-cluster://:pw@n1:7000,n2:7001,n3')).toEqual({
      kind: 'cluster',
      nodes: [
        { host: 'n1', port: 7000 },
        { host: 'n2', port: 7001 },
        { host: 'n3', port: 6379 },
      ],
      tls: true,
      password: 'pw',
    });
  });

  it.each([
    ['http://redis:6379', /must start with/],
    ['redis-sentinel://s1:26379', /master name/],
    ['redis-sentinel://s1:26379/kiot?foo=1', /unknown redis-sentinel:\/\/ parameter foo/],
    ['redis-sentinel://s1:26379/kiot?db=x', /database number/],
    ['redis-cluster://n1:7000/1', /no path/],
    ['redis-cluster://n1:7000?tls=1', /no parameters/],
    ['redis-cluster://n1:99999', /valid port/],
    ['redis-cluster://n1:7000,,n2', /not a host/],
  ])('refuses %s with a reason', (url, reason) => {
    expect(() => parseRedisUrl(url)).toThrow(reason);
  });

  it('is checked with the rest of the configuration at start', () => {
    const schema = baseConfigSchema.extend(redisFields);
    expect(loadConfig(schema, { REDIS_URL: 'redis-cluster://10.0.0.1:7000,10.0.0.2:7000' }).REDIS_URL).toBe(
      'redis-cluster://10.0.0.1:7000,10.0.0.2:7000',
    );
    expect(() => loadConfig(schema, { REDIS_URL: 'redis-sentinel://s1' })).toThrow(ConfigError);
  });
});

describe('Redis errors and slots', () => {
  it.each([
    'CLUSTERDOWN The cluster is down',
    'TRYAGAIN Multiple keys request during rehashing of slot',
    'MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to no',
    'LOADING Redis is loading the dataset in memory',
    "READONLY You can't write against a read only replica.",
    'Too many Cluster redirections. Last error: Error: Connection is closed.',
    'Connection is closed.',
    'connect ECONNREFUSED 127.0.0.1:7000',
    "Cluster isn't ready and enableOfflineQueue options is false",
    'Failed to refresh slots cache.',
    // A slot moved by a failover, answered to a command that ioredis sent in an auto-pipeline with others it
    // does not redirect (Pipeline#fillResult retries a pipeline only when every command failed alike).
    'MOVED 12082 127.0.0.1:40845',
    'ASK 12082 127.0.0.1:40845',
  ])('treats "%s" as Redis unavailable (503, retried)', async (message) => {
    expect(isRedisUnavailable(new Error(message))).toBe(true);
    await expect(withRedis(() => Promise.reject(new Error(message)))).rejects.toBeInstanceOf(
      DependencyUnavailableError,
    );
  });

  it.each([
    "CROSSSLOT Keys in request don't hash to the same slot",
    'WRONGTYPE Operation against a key holding the wrong kind of value',
    'ERR Error running script',
  ])('lets "%s" through as the bug it is', async (message) => {
    expect(isRedisUnavailable(new Error(message))).toBe(false);
    await expect(withRedis(() => Promise.reject(new Error(message)))).rejects.not.toBeInstanceOf(
      DependencyUnavailableError,
    );
  });

  it('groups keys by hash slot on a Cluster, honouring hash tags, and not at all on one node', () => {
    const keys = ['kiot:{dev-1}:a', 'kiot:{dev-1}:b', 'kiot:{dev-2}:a', 'auth:dev-3'];
    const groups = groupsForOneCall(keys, slotOf, true);
    expect(groups).toContainEqual(['kiot:{dev-1}:a', 'kiot:{dev-1}:b']);
    expect(groups.flat().sort()).toEqual([...keys].sort());
    expect(groups).toHaveLength(3);
    // The slots the Redis Cluster specification gives (its examples: "foo" → 12182, "{user1000}.following" =
    // "{user1000}.followers").
    expect(slotOf('foo')).toBe('12182');
    expect(slotOf('{user1000}.following')).toBe(slotOf('{user1000}.followers'));
    expect(groupsForOneCall(keys, slotOf, false)).toEqual([keys]);
    expect(groupsForOneCall([], slotOf, false)).toEqual([]);
  });
});
