import { defineConfig } from 'vitest/config';

/**
 * The suites that exercise what kiot keeps in Redis — Lua scripts, pipelines, pub/sub, the shadow's hot copy,
 * the auth cache. Besides the run on one node, they run again on a Redis Cluster and on Sentinel when
 * REDIS_CLUSTER_URL / REDIS_SENTINEL_URL name one (`npm test` starts both with scripts/redis-topologies.sh).
 * Suites whose Redis use is the same admission script these already cover (validation, HTTP ingest), that
 * test MongoDB, the sink, the schemas or the MQTT path around the same completion bus (retention, sweep, sink
 * outage, OpenAPI, the registry's API, command-dispatch's MQTT path), or
 * that start private Redis servers of their own (outage, failover) run once.
 */
export const REDIS_SUITES = [
  'test/integration/telemetry-ingest/{admission,alerts,batch,end-to-end,ingest,live,state}.test.ts',
  'test/integration/command-dispatch/{desired-state,idempotency,lifecycle,two-instances}.test.ts',
  'test/integration/device-registry/{auth-hooks,end-to-end}.test.ts',
  'test/integration/{shadow,function-app,emitter-and-stores,redis-scripts}.test.ts',
];

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
        test: { name, include: REDIS_SUITES, env: { REDIS_URL: url } },
      })),
    ],
  },
});
