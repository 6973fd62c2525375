import type { Logger } from '../../shared/logger.js';
import type { RedisClient, RedisHandle } from '../../shared/redis.js';
import { groupsByNode, withRedis } from '../../shared/redis.js';
import { channelsOf } from '../../shared/redis-pubsub.js';
import { luaScript } from '../../shared/redis-script.js';
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

/** A stored batch as the live feed sees it. */
export interface LiveBatch {
  /** The devices whose samples the batch stored (or found stored). */
  devices: readonly string[];
  /** The samples of the given devices (built only for watched ones). */
  samplesOf(watched: ReadonlySet<string>): readonly { deviceId: string; ts: Date; metrics: Record<string, number> }[];
  /** The devices the admission call (before the insert) found watched. */
  watched: ReadonlySet<string>;
  /** `epoch()` as it was when the admission call was sent. */
  epoch: string | undefined;
}

export interface LiveFeed {
  /**
   * Announces samples that are durable now: one message per watched device on its channel (Redis pub/sub, so
   * whichever replica holds a browser's stream hears it) and the fleet's count of stored messages in this
   * second (`messages` counts every stored message). Best effort: a live view that misses one re-reads the API;
   * it never fails the ingest.
   *
   * Which devices are watched was read before the insert (telemetry's admission call), where a hub's mark set
   * after that read and before the insert was acknowledged would be missed: the hub's listener may read the API
   * before the sample is stored, and it would never hear of it. A hub therefore changes the watch epoch
   * (`keys.watchEpoch`) after marking and before subscribing (live-hub.ts), and the counter's round trip after the
   * insert reads the epoch: if it is not the one this process knew before the admission call was sent, the marks
   * are read again (one call per master, rare: once per hub listen and batch in flight). Sound because a mark the
   * admission missed was set after that call read it, so the hub's epoch change came after the known epoch was
   * read; and if it came before the post-insert read, the marks are read again and the mark is seen, while if it
   * came after, the hub's listener reads the API after the insert was acknowledged and finds the sample there.
   */
  stored(batch: LiveBatch, messages: number, now: number): void;
  /** The watch epoch as last read after an insert (`undefined` before the first: every batch reads the marks again). */
  epoch(): string | undefined;
  /** Messages stored per second over the last `seconds` whole seconds, oldest first. */
  rate(seconds: number, now: number): Promise<{ t: string; messages: number }[]>;
}

const RATE_TTL_SECONDS = 120;

/** The positions (1-based) of the presence hashes KEYS whose `watched` mark (Redis TIME seconds) holds. */
const WATCHED = luaScript(`
local now = tonumber(redis.call('TIME')[1])
local out = {}
for i = 1, #KEYS do
  if (tonumber(redis.call('HGET', KEYS[i], 'watched')) or 0) > now then out[#out + 1] = i end
end
return out
`);

async function watchedNow(client: RedisClient, keys: RedisKeys, devices: readonly string[]): Promise<Set<string>> {
  const watched = new Set<string>();
  await Promise.all(
    groupsByNode(client, devices, (deviceId) => keys.presence(deviceId)).map(async (group) => {
      const positions = (await WATCHED.run(
        client,
        group.map((deviceId) => keys.presence(deviceId)),
        [],
      )) as number[];
      for (const position of positions) watched.add(group[position - 1]!);
    }),
  );
  return watched;
}

export function createLiveFeed(redis: RedisHandle, keys: RedisKeys, logger: Logger): LiveFeed {
  let failures = 0;
  // The second whose counter this process has given its expiry: one EXPIRE per second, not one per batch.
  let expiring = -1;
  let epoch: string | undefined;
  const warn = (error: unknown) => {
    // One line per hundred failures: Redis being down is already what every other step reports.
    if (failures++ % 100 === 0) logger.warn({ err: error, failures }, 'could not publish stored samples live');
  };
  return {
    epoch: () => epoch,
    stored(batch, messages, now) {
      if (messages === 0) return;
      const second = Math.floor(now / 1000);
      const expire = second !== expiring;
      expiring = second;
      void withRedis(async () => {
        const client = await redis.client();
        // The epoch read is auto-pipelined with the counter: one round trip, after the insert.
        const [current] = await Promise.all([
          client.get(keys.watchEpoch),
          client.incrby(keys.rate(second), messages),
          expire && client.expire(keys.rate(second), RATE_TTL_SECONDS),
        ]);
        epoch = current ?? '';
        const watched =
          batch.epoch === epoch || batch.devices.length === 0
            ? batch.watched
            : await watchedNow(client, keys, batch.devices);
        if (watched.size === 0) return;
        const byDevice = new Map<string, LiveSample[]>();
        for (const sample of batch.samplesOf(watched)) {
          const list = byDevice.get(sample.deviceId) ?? [];
          list.push({ ts: sample.ts.toISOString(), metrics: sample.metrics });
          byDevice.set(sample.deviceId, list);
        }
        if (byDevice.size === 0) return;
        // One script call per master for every device's message (one on one node).
        await channelsOf(client).publishMany(
          [...byDevice].map(([deviceId, list]) => {
            list.sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0));
            const message: LiveMessage = { deviceId, samples: list };
            return { channel: keys.live(deviceId), message: JSON.stringify(message) };
          }),
        );
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
