import type { Logger } from '../../shared/logger.js';
import type { RedisHandle } from '../../shared/redis.js';
import { withRedis } from '../../shared/redis.js';
import { channelsOf } from '../../shared/redis-pubsub.js';
import type { RedisKeys } from './redis-keys.js';

/** A stored sample as a live chart receives it. */
export interface LiveSample {
  ts: string;
  metrics: Record<string, number>;
}

/** What one publication on a device's channel carries: its samples of one stored batch, in time order. */
export interface LiveMessage {
  deviceId: string;
  samples: LiveSample[];
}

export interface LiveFeed {
  /**
   * Announces samples that are durable now: one message per device on its channel (Redis pub/sub, so
   * whichever replica holds a browser's stream hears it) and the fleet's count of stored messages in this
   * second. The caller passes only the samples of watched devices (`keys.watched`); `messages` counts every
   * stored message. Best effort: a live view that misses one re-reads the API; it never fails the ingest.
   */
  stored(
    samples: readonly { deviceId: string; ts: Date; metrics: Record<string, number> }[],
    messages: number,
    now: number,
  ): void;
  /** Messages stored per second over the last `seconds` whole seconds, oldest first. */
  rate(seconds: number, now: number): Promise<{ t: string; messages: number }[]>;
}

const RATE_TTL_SECONDS = 120;

export function createLiveFeed(redis: RedisHandle, keys: RedisKeys, logger: Logger): LiveFeed {
  let failures = 0;
  // The second whose counter this process has given its expiry: one EXPIRE per second, not one per batch.
  let expiring = -1;
  const warn = (error: unknown) => {
    // One line per hundred failures: Redis being down is already what every other step reports.
    if (failures++ % 100 === 0) logger.warn({ err: error, failures }, 'could not publish stored samples live');
  };
  return {
    stored(samples, messages, now) {
      if (messages === 0) return;
      const byDevice = new Map<string, LiveSample[]>();
      for (const sample of samples) {
        const list = byDevice.get(sample.deviceId) ?? [];
        list.push({ ts: sample.ts.toISOString(), metrics: sample.metrics });
        byDevice.set(sample.deviceId, list);
      }
      const second = Math.floor(now / 1000);
      const expire = second !== expiring;
      expiring = second;
      void withRedis(async () => {
        const client = await redis.client();
        const channels = channelsOf(client);
        // One script call per master for every device's message (one on one node), auto-pipelined with the counter.
        await Promise.all([
          byDevice.size > 0 &&
            channels.publishMany(
              [...byDevice].map(([deviceId, list]) => {
                list.sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0));
                const message: LiveMessage = { deviceId, samples: list };
                return { channel: keys.live(deviceId), message: JSON.stringify(message) };
              }),
            ),
          client.incrby(keys.rate(second), messages),
          expire && client.expire(keys.rate(second), RATE_TTL_SECONDS),
        ]);
      }).catch((error: unknown) => {
        // The expiry may not have been set: the next batch of this second sets it again.
        if (expire && expiring === second) expiring = -1;
        warn(error);
      });
    },
    rate: (seconds, now) =>
      withRedis(async () => {
        const last = Math.floor(now / 1000) - 1;
        const seconds_ = Array.from({ length: seconds }, (_, i) => last - seconds + 1 + i);
        const counts = await (await redis.client()).mget(...seconds_.map((second) => keys.rate(second)));
        return seconds_.map((second, i) => ({
          t: new Date(second * 1000).toISOString(),
          messages: Number(counts[i] ?? 0),
        }));
      }),
  };
}
