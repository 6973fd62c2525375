import { randomUUID } from 'node:crypto';
import { Cluster } from 'ioredis';
import type { RedisClient, RedisHandle } from '../../shared/redis.js';
import { withRedis } from '../../shared/redis.js';
import { type Channels, channelsOf } from '../../shared/redis-pubsub.js';
import { luaScript } from '../../shared/redis-script.js';
import type { LiveMessage } from './live-feed.js';
import type { RedisKeys } from './redis-keys.js';

/** What a live listener hears: a device's stored samples, or `gap` when some may have been missed. */
export type LiveSignal = { kind: 'samples'; message: LiveMessage } | { kind: 'gap' };

export interface LiveHub {
  /**
   * Listens to one device's channel; resolves once the subscription is live on the server (so a caller that
   * reads the API after this misses nothing in between). One SUBSCRIBE per device and replica, however many
   * browsers watch it; the last listener to leave unsubscribes.
   */
  listen(deviceId: string, listener: (signal: LiveSignal) => void): Promise<() => void>;
  close(): Promise<void>;
}

/** How long a device stays watched without a refresh; the hub refreshes its devices every third of it. */
export const WATCHED_TTL_SECONDS = 60;

/**
 * Marks a device watched for ARGV[1] seconds: the `watched` field of its presence hash holds until when (Redis
 * TIME seconds, so no replica's clock is involved), and telemetry's admission call (ADMIT) reads it with the presence
 * and the rate it updates before each insert — a key of its own cost an EXISTS per device and batch. A hash that holds
 * no presence yet (a device never seen) expires with the mark instead of staying; the device's first message gives
 * it presence's TTL.
 */
const WATCH = luaScript(`
local expiry = tonumber(redis.call('TIME')[1]) + tonumber(ARGV[1])
redis.call('HSET', KEYS[1], 'watched', expiry)
if redis.call('HEXISTS', KEYS[1], 'status') == 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return 0
`);

/**
 * The subscribing side of the live feed (live-feed.ts publishes). `subscriber` is a connection of its own: a
 * Redis connection in subscriber mode serves nothing else. When it reconnects (or on a Cluster, when one
 * master's subscriber is replaced after a failover), ioredis subscribes again, but what was published meanwhile
 * is gone, so every listener hears `gap` and re-reads the API.
 * Only watched devices are published: before it subscribes, the hub marks the device watched (`WATCH`, through
 * `redis`, for a time it renews while it listens) and then changes the watch epoch; the ingest reads the marks
 * before each insert (telemetry's admission call) and again after it if the epoch changed meanwhile (live-feed.ts),
 * so a sample stored after the mark is published. A refresh that fails is a `gap` for the listeners: their device
 * may have gone unpublished.
 */
export function createLiveHub(subscriber: RedisHandle, redis: RedisHandle, keys: RedisKeys): LiveHub {
  const listeners = new Map<string, Set<(signal: LiveSignal) => void>>();
  /** The device of each channel listened to. */
  const devices = new Map<string, string>();
  let connected: { client: RedisClient; channels: Channels } | undefined;
  // `fresh`: devices not marked until now (a listen, a remark after a reconnection), so the epoch changes after
  // the marks are set; a periodic refresh of marks that hold already need not.
  const markWatched = (ids: readonly string[], fresh: boolean) =>
    withRedis(async () => {
      const client = await redis.client();
      await Promise.all(ids.map((id) => WATCH.run(client, [keys.presence(id)], [WATCHED_TTL_SECONDS])));
      if (fresh) await client.set(keys.watchEpoch, randomUUID());
    });
  const gap = () => {
    for (const set of listeners.values()) for (const listener of [...set]) listener({ kind: 'gap' });
  };
  const remark = (fresh: boolean) => markWatched([...devices.values()], fresh);
  const refresh = setInterval(
    () => {
      if (devices.size > 0) remark(false).catch(gap);
    },
    (WATCHED_TTL_SECONDS * 1000) / 3,
  ).unref();
  // After a reconnection or a failover (which may have lost marks: replication is asynchronous), the devices are
  // marked again before the listeners hear `gap` and re-read the API; if that fails, the refresh tries again.
  const remarkThenGap = () =>
    void remark(true)
      .catch(() => undefined)
      .then(gap);

  function deliver(channel: string, text: string) {
    const set = listeners.get(channel);
    if (!set) return;
    let message: LiveMessage;
    try {
      message = JSON.parse(text) as LiveMessage;
    } catch {
      return;
    }
    for (const listener of [...set]) listener({ kind: 'samples', message });
  }

  async function channels(): Promise<Channels> {
    const client = await subscriber.client();
    if (connected?.client !== client) {
      const current = { client, channels: channelsOf(client) };
      connected = current;
      current.channels.onMessage(deliver);
      let ready = true;
      client.on('close', () => {
        ready = false;
      });
      client.on('ready', () => {
        if (ready) return;
        ready = true;
        remarkThenGap();
      });
      if (client instanceof Cluster) {
        // On a Cluster each master's channels have a subscriber connection of their own (sharded pub/sub), lost
        // with its node while the client as a whole stays ready: ioredis drops it (`-subscriber`), and once the
        // slot map is refreshed subscribes the channels again on the new masters (`subscribersReady`).
        let lost = false;
        client.on('-subscriber', () => {
          lost = true;
        });
        client.on('subscribersReady', () => {
          if (!lost) return;
          lost = false;
          remarkThenGap();
        });
      }
    }
    return connected.channels;
  }

  function leave(channel: string, listener: (signal: LiveSignal) => void) {
    const set = listeners.get(channel);
    if (!set?.delete(listener) || set.size > 0) return;
    listeners.delete(channel);
    // The mark is left to expire: another replica may watch the device too.
    devices.delete(channel);
    void connected?.channels.unsubscribe(channel).catch(() => undefined);
  }

  return {
    async listen(deviceId, listener) {
      const channel = keys.live(deviceId);
      const set = listeners.get(channel) ?? new Set();
      set.add(listener);
      listeners.set(channel, set);
      devices.set(channel, deviceId);
      try {
        // Watched first (and the epoch changed), then subscribed: a sample stored before the mark is in the API's
        // answer, one after it is published (the ingest reads the mark again after its insert if the epoch changed).
        await markWatched([deviceId], true);
        // Every listener waits for a SUBSCRIBE (a repeated one is harmless): ioredis resolves it once the server
        // confirmed it, so the subscription is live for this listener too.
        await withRedis(async () => (await channels()).subscribe(channel));
      } catch (error) {
        leave(channel, listener);
        throw error;
      }
      return () => leave(channel, listener);
    },
    async close() {
      clearInterval(refresh);
      listeners.clear();
      devices.clear();
      connected = undefined;
      await subscriber.close();
    },
  };
}
