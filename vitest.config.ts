import { defineConfig } from 'vitest/config';

/**
 * The suites whose subject keeps state in Redis. Besides the run on one node, they run again on a Redis
 * Cluster and on Sentinel when REDIS_CLUSTER_URL / REDIS_SENTINEL_URL name one (`npm test` starts both
 * with scripts/redis-topologies.sh). Suites that bring private Redis servers of their own run once.
 */
const REDIS_SUITES = [
  'test/integration/telemetry-ingest/*.test.ts',
  'test/integration/command-dispatch/*.test.ts',
  'test/integration/device-registry/{api,auth-hooks,end-to-end}.test.ts',
  'test/integration/{shadow,function-app,emitter-and-stores}.test.ts',
  'test/integration/redis/*.test.ts',
];
const PRIVATE_REDIS = ['test/integration/telemetry-ingest/outage.test.ts', 'test/integration/redis/failover-*.test.ts'];

const topologies = [
  { name: 'redis-cluster', url: process.env.REDIS_CLUSTER_URL },
  { name: 'redis-sentinel', url: process.env.REDIS_SENTINEL_URL },
].filter((topology): topology is { name: string; url: string } => Boolean(topology.url));

export default defineConfig({
  test: {
    // Integration tests share one Mosquitto/Redis/Mongo; each file isolates itself by unique
    // database names, device ids and share groups, so files may run in parallel.
    fileParallelism: true,
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    globalSetup: ['test/global-setup.ts'],
    projects: [
      { extends: true, test: { name: 'default', include: ['test/**/*.test.ts'] } },
      ...topologies.map(({ name, url }) => ({
        extends: true as const,
        test: { name, include: REDIS_SUITES, exclude: PRIVATE_REDIS, env: { REDIS_URL: url } },
      })),
    ],
  },
});
