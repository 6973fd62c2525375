import type { Redis } from 'ioredis';
import type { RedisHandle } from '../../shared/redis.js';
import { withRedis } from '../../shared/redis.js';
import type { CommandView } from './command-view.js';

/**
 * Wakes a caller waiting on a command result, whichever instance receives the device's ack: the
 * instance that finishes a command PUBLISHes its view on a per-command channel, and the instance holding
 * the caller is SUBSCRIBEd to it (Redis pub/sub, no polling). Pub/sub keeps nothing for late
 * subscribers, so a waiter subscribes *before* the command is sent and re-reads the store once after
 * its wait (see `waitForResult`).
 */
export interface CompletionBus {
  /** Resolves once the subscription is live on the server. */
  subscribe(commandId: string): Promise<Subscription>;
  publish(view: CommandView): Promise<void>;
  close(): Promise<void>;
}

export interface Subscription {
  /** The finished command's view; never rejects. */
  readonly done: Promise<CommandView>;
  cancel(): void;
}

export function createCompletionBus(publisher: RedisHandle, subscriber: RedisHandle, prefix: string): CompletionBus {
  const channel = (commandId: string) => `${prefix}cmd:done:${commandId}`;
  const waiters = new Map<string, Set<(view: CommandView) => void>>();
  let listening: Redis | undefined;

  async function subscriberClient(): Promise<Redis> {
    const client = await subscriber.client();
    if (listening !== client) {
      listening = client;
      client.on('message', (name: string, message: string) => {
        const set = waiters.get(name);
        if (!set) return;
        let view: CommandView;
        try {
          view = JSON.parse(message) as CommandView;
        } catch {
          return;
        }
        for (const wake of [...set]) wake(view);
      });
    }
    return client;
  }

  function release(name: string, wake: (view: CommandView) => void) {
    const set = waiters.get(name);
    if (!set) return;
    set.delete(wake);
    if (set.size > 0) return;
    waiters.delete(name);
    void listening?.unsubscribe(name).catch(() => undefined);
  }

  return {
    async subscribe(commandId) {
      const name = channel(commandId);
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
          await withRedis(async () => void (await (await subscriberClient()).subscribe(name)));
        } catch (error) {
          release(name, wake);
          throw error;
        }
      }
      return { done, cancel: () => release(name, wake) };
    },
    publish: (view) =>
      withRedis(async () => void (await (await publisher.client()).publish(channel(view.id), JSON.stringify(view)))),
    async close() {
      waiters.clear();
      listening = undefined;
      await subscriber.close();
    },
  };
}
