import { Cluster } from 'ioredis';
import type { RedisClient } from './redis.js';

/**
 * Pub/sub on whichever deployment. On a Cluster it is sharded pub/sub (SSUBSCRIBE/SPUBLISH, Redis 7.0):
 * a channel lives in the hash slot of its name like a key, so a message travels only to the shard that
 * owns it, where classic PUBLISH on a Cluster is broadcast over the cluster bus to every node. The
 * subscribing client needs `shardedSubscriber: true` (createRedis). On one node or Sentinel: classic.
 */
export interface Channels {
  subscribe(channel: string): Promise<void>;
  unsubscribe(channel: string): Promise<void>;
  publish(channel: string, message: string): Promise<void>;
  /** Every message of a subscribed channel. */
  onMessage(listener: (channel: string, message: string) => void): void;
}

export function channelsOf(client: RedisClient): Channels {
  if (client instanceof Cluster) {
    return {
      subscribe: async (channel) => void (await client.ssubscribe(channel)),
      unsubscribe: async (channel) => void (await client.sunsubscribe(channel)),
      publish: async (channel, message) => void (await client.spublish(channel, message)),
      onMessage: (listener) => void client.on('smessage', listener),
    };
  }
  return {
    subscribe: async (channel) => void (await client.subscribe(channel)),
    unsubscribe: async (channel) => void (await client.unsubscribe(channel)),
    publish: async (channel, message) => void (await client.publish(channel, message)),
    onMessage: (listener) => void client.on('message', listener),
  };
}
