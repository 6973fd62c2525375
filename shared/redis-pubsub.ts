import { Cluster } from 'ioredis';
import { groupsByNode, type RedisClient } from './redis.js';
import { luaScript } from './redis-script.js';

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
  /**
   * Many messages on many channels (a batch's devices): one script call per master on a Cluster, one call on one
   * node or Sentinel, instead of a command per channel.
   */
  publishMany(messages: readonly { channel: string; message: string }[]): Promise<void>;
  /** Every message of a subscribed channel. */
  onMessage(listener: (channel: string, message: string) => void): void;
}

export function channelsOf(client: RedisClient): Channels {
  if (client instanceof Cluster) {
    return {
      subscribe: async (channel) => void (await client.ssubscribe(channel)),
      unsubscribe: async (channel) => void (await client.sunsubscribe(channel)),
      publish: async (channel, message) => void (await client.spublish(channel, message)),
      publishMany: (messages) => publishMany(client, 'SPUBLISH', messages),
      onMessage: (listener) => void client.on('smessage', listener),
    };
  }
  return {
    subscribe: async (channel) => void (await client.subscribe(channel)),
    unsubscribe: async (channel) => void (await client.unsubscribe(channel)),
    publish: async (channel, message) => void (await client.publish(channel, message)),
    publishMany: (messages) => publishMany(client, 'PUBLISH', messages),
    onMessage: (listener) => void client.on('message', listener),
  };
}

/**
 * Publishes ARGV[1+i] on channel KEYS[i] with the command ARGV[1]. The channels are declared as keys: a sharded
 * channel lives in its name's slot (Redis "Sharded Pub/Sub"), so they route the call to their master, where a
 * channel of another master fails the call like a key would (redis-script.ts). Without the Cluster probe: the
 * publications are best effort (a listener that misses one re-reads), so a call cut short is harmless.
 */
const PUBLISH_ALL = luaScript(
  `
for i = 1, #KEYS do redis.call(ARGV[1], KEYS[i], ARGV[i + 1]) end
return #KEYS
`,
  { probe: false },
);

async function publishMany(
  client: RedisClient,
  command: 'PUBLISH' | 'SPUBLISH',
  messages: readonly { channel: string; message: string }[],
): Promise<void> {
  await Promise.all(
    groupsByNode(client, messages, (message) => message.channel).map((group) =>
      PUBLISH_ALL.run(
        client,
        group.map((message) => message.channel),
        [command, ...group.map((message) => message.message)],
      ),
    ),
  );
}
