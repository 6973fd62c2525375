import type { RedisClient, RedisHandle } from '../../shared/redis.js';
import { withRedis } from '../../shared/redis.js';
import { type Channels, channelsOf } from '../../shared/redis-pubsub.js';
import type { CommandView } from './command-view.js';
import { commandKeys } from './redis-keys.js';

/**
 * Wakes a caller waiting on a command result, whichever instance receives the device's ack: the
 * instance that finishes a command PUBLISHes its view on a per-command channel, and the instance holding
 * the caller is SUBSCRIBEd to it (Redis pub/sub, no polling; sharded on a Cluster, in the device's slot).
 * Pub/sub keeps nothing for late subscribers, so a waiter subscribes *before* the command is sent and
 * re-reads the store once after its wait (see `waitForResult`).
 */
export interface CompletionBus {
  /** Resolves once the subscription is live on the server. */
  subscribe(deviceId: string, commandId: string): Promise<Subscription>;
  publish(view: CommandView): Promise<void>;
  close(): Promise<void>;
}

export interface Subscription {
  /** The finished command's view; never rejects. */
  readonly done: Promise<CommandView>;
  cancel(): void;
}

export function createCompletionBus(publisher: RedisHandle, subscriber: RedisHandle, prefix: string): CompletionBus {
  const keys = commandKeys(prefix);
  const waiters = new Map<string, Set<(view: CommandView) => void>>();
  let listening: { client: RedisClient; channels: Channels } | undefined;

  function deliver(name: string, message: string) {
    const set = waiters.get(name);
    if (!set) return;
    let view: CommandView;
    try {
      view = JSON.parse(message) as CommandView;
    } catch {
      return;
    }
    for (const wake of [...set]) wake(view);
  }

  async function subscriberChannels(): Promise<Channels> {
    const client = await subscriber.client();
    if (listening?.client !== client) {
      listening = { client, channels: channelsOf(client) };
      listening.channels.onMessage(deliver);
    }
    return listening.channels;
  }

  function release(name: string, wake: (view: CommandView) => void) {
    const set = waiters.get(name);
    if (!set) return;
    set.delete(wake);
    if (set.size > 0) return;
    waiters.delete(name);
    void listening?.channels.unsubscribe(name).catch(() => undefined);
  }

  return {
    async subscribe(deviceId, commandId) {
      const name = keys.done(deviceId, commandId);
      let wake!: (view: CommandView) => void;
      const done = new Promise<CommandView>((resolve) => {
        wake = (view) => {
          release(name, wake);
          resolve(view);
        };
      });
      const set = waiters.get(name) ?? new Set();
      const first = set.size === 0;
      set.add(wake);
      waiters.set(name, set);
      if (first) {
        try {
          await withRedis(async () => (await subscriberChannels()).subscribe(name));
        } catch (error) {
          release(name, wake);
          throw error;
        }
      }
      return { done, cancel: () => release(name, wake) };
    },
    publish: (view) =>
      withRedis(async () =>
        channelsOf(await publisher.client()).publish(keys.done(view.deviceId, view.id), JSON.stringify(view)),
      ),
    async close() {
      waiters.clear();
      listening = undefined;
      await subscriber.close();
    },
  };
}
