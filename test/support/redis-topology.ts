import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import calculateSlot from 'cluster-key-slot';
import { Redis } from 'ioredis';
import { parseRedisUrl } from '../../shared/redis-topology.js';

const run = promisify(execFile);

/**
 * A Redis Cluster or Sentinel setup of one test's own (scripts/redis-topologies.sh on ports the OS picks,
 * in a directory of its own), for tests that kill its nodes. A master is declared failed after
 * `failoverMs` (default 3 s): longer than the Cluster client rides out a failover by itself (16
 * redirections 100 ms apart, ioredis), so the functions meet the outage and must answer it.
 */
export interface PrivateTopology {
  kind: 'cluster' | 'sentinel';
  url: string;
  /** The port of the master serving `key` now (for Sentinel: the one master). */
  masterOf(key: string): Promise<number>;
  /** SIGKILL of the node on `port`, as a crashed machine. */
  kill(port: number): void;
  /** Resolves once a master other than `port` serves `key`. */
  failedOver(key: string, port: number): Promise<number>;
  stop(): Promise<void>;
}

export async function startPrivateTopology(
  kind: 'cluster' | 'sentinel',
  options: { failoverMs?: number } = {},
): Promise<PrivateTopology> {
  const dir = await mkdtemp(join(tmpdir(), `kiot-redis-${kind}-`));
  const env = {
    ...process.env,
    REDIS_TOPOLOGY_DIR: dir,
    REDIS_TOPOLOGY_PORTS: 'free',
    REDIS_FAILOVER_MS: String(options.failoverMs ?? 3_000),
  };
  const script = 'scripts/redis-topologies.sh';
  const stop = async () => {
    await run('bash', [script, 'stop'], { env }).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await run('bash', [script, 'start', kind], { env });
  } catch (error) {
    await stop();
    throw error;
  }
  const { stdout } = await run('bash', [script, 'env'], { env });
  const url = new RegExp(`^REDIS_${kind.toUpperCase()}_URL=(.*)$`, 'm').exec(stdout)![1]!;
  const topology = parseRedisUrl(url);
  const seeds = topology.kind === 'cluster' ? topology.nodes : topology.kind === 'sentinel' ? topology.sentinels : [];

  /** Asks each seed in turn (one may be the killed node) until one answers. */
  async function ask<T>(question: (client: Redis) => Promise<T>): Promise<T> {
    let last: unknown;
    for (const seed of seeds) {
      const client = new Redis({ ...seed, lazyConnect: true, connectTimeout: 500, maxRetriesPerRequest: 0 });
      client.on('error', () => undefined);
      try {
        await client.connect();
        return await question(client);
      } catch (error) {
        last = error;
      } finally {
        client.disconnect();
      }
    }
    throw last;
  }

  async function masterOf(key: string): Promise<number> {
    if (kind === 'sentinel') {
      const [, port] = (await ask((client) => client.call('SENTINEL', 'get-master-addr-by-name', 'kiot'))) as string[];
      return Number(port);
    }
    const slot = calculateSlot(key);
    const ranges = (await ask((client) => client.call('CLUSTER', 'SLOTS'))) as [number, number, [string, number]][];
    const range = ranges.find(([from, to]) => slot >= from && slot <= to);
    if (!range) throw new Error(`no master serves slot ${slot}`);
    return range[2][1];
  }

  return {
    kind,
    url,
    masterOf,
    kill(port) {
      process.kill(
        Number(readFileSync(join(dir, `${kind === 'cluster' ? 'cluster' : 'data'}-${port}.pid`), 'utf8')),
        'SIGKILL',
      );
    },
    async failedOver(key, port) {
      for (;;) {
        const now = await masterOf(key).catch(() => port);
        if (now !== port) return now;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    },
    stop,
  };
}
