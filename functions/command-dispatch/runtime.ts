import { randomUUID } from 'node:crypto';
import { createDeviceDirectory } from '../../shared/devices.js';
import { createEmitter } from '../../shared/emitter.js';
import { bearerHeader, createTokenSource } from '../../shared/event-auth.js';
import { createEventDispatcher } from '../../shared/event-transport.js';
import type { HandlerContext } from '../../shared/function-app.js';
import type { Logger } from '../../shared/logger.js';
import { connectMongo, type MongoHandle } from '../../shared/mongo.js';
import { createRedis } from '../../shared/redis.js';
import { createShadowStore } from '../../shared/shadow-store.js';
import { createCommandRepository } from './command-repository.js';
import { createCompletionBus } from './completion-bus.js';
import type { CommandDispatchConfig } from './config.js';
import { createDeltaMemo } from './delta-publisher.js';
import type { CommandDeps } from './deps.js';
import { createPresenceStore } from './presence.js';
import { sweepCommands } from './sweep.js';

export interface CommandRuntime {
  deps: CommandDeps;
  /** The MongoDB handle of the stores (the API-key lookup shares it). */
  mongo: MongoHandle;
  health: Record<string, () => Promise<unknown>>;
  /** Runs the sweep every `intervalMs` (skipping a tick while one still runs); returns the stopper. */
  startSweepTimer(intervalMs: number, logger: Logger): () => void;
  close(): Promise<void>;
}

type RuntimeConfig = Pick<
  CommandDispatchConfig,
  | 'MONGODB_URL'
  | 'MONGODB_DB'
  | 'MONGODB_WRITE_CONCERN'
  | 'MONGODB_JOURNAL'
  | 'MONGODB_WRITE_TIMEOUT_MS'
  | 'MONGODB_READ_PREFERENCE'
  | 'REDIS_URL'
  | 'K_SINK'
  | 'REDIS_KEY_PREFIX'
  | 'COMMAND_QUEUE_CAP'
  | 'COMMAND_MAX_RESENDS'
  | 'COMMAND_DEFAULT_TTL_SECONDS'
  | 'COMMAND_DEFAULT_TIMEOUT_SECONDS'
  | 'COMMAND_SWEEP_BATCH'
  | 'SHADOW_REDIS_PREFIX'
  | 'SHADOW_MAX_BYTES'
  | 'SHADOW_MAX_DEPTH'
  | 'EVENT_TOKEN_FILE'
>;

/** Builds the real stores and clients from validated config; everything connects on first use. */
export function createCommandRuntime(config: RuntimeConfig): CommandRuntime {
  const mongo = connectMongo(config);
  const redis = createRedis(config.REDIS_URL);
  // Subscriber mode takes a connection of its own (on a Cluster: one per master, for sharded pub/sub).
  const subscriber = createRedis(config.REDIS_URL, { shardedSubscriber: true });
  const dispatcher = createEventDispatcher();
  const deps: CommandDeps = {
    commands: createCommandRepository(mongo),
    presence: createPresenceStore(redis, config.REDIS_KEY_PREFIX),
    bus: createCompletionBus(redis, subscriber, config.REDIS_KEY_PREFIX),
    emitter: createEmitter({
      sink: config.K_SINK,
      source: '/kiot/command-dispatch',
      dispatcher,
      headers: bearerHeader(createTokenSource(config.EVENT_TOKEN_FILE)),
    }),
    devices: createDeviceDirectory(mongo),
    settings: {
      queueCap: config.COMMAND_QUEUE_CAP,
      maxResends: config.COMMAND_MAX_RESENDS,
      defaultTtlSeconds: config.COMMAND_DEFAULT_TTL_SECONDS,
      defaultTimeoutSeconds: config.COMMAND_DEFAULT_TIMEOUT_SECONDS,
      sweepBatch: config.COMMAND_SWEEP_BATCH,
    },
    shadows: createShadowStore(redis, mongo, config.SHADOW_REDIS_PREFIX),
    deltas: createDeltaMemo(redis, config.REDIS_KEY_PREFIX),
    limits: { maxBytes: config.SHADOW_MAX_BYTES, maxDepth: config.SHADOW_MAX_DEPTH },
    clock: () => new Date(),
    newId: randomUUID,
  };
  return {
    deps,
    mongo,
    health: {
      mongodb: async () => (await mongo.db()).command({ ping: 1 }),
      redis: async () => (await redis.client()).ping(),
    },
    startSweepTimer(intervalMs, logger) {
      let running = false;
      const timer = setInterval(() => {
        if (running) return;
        running = true;
        const ctx: HandlerContext = { logger, invocationId: `sweep-${Date.now()}` };
        sweepCommands(deps, ctx)
          .catch((error: unknown) => logger.warn({ err: error }, 'sweep failed'))
          .finally(() => (running = false));
      }, intervalMs);
      timer.unref();
      return () => clearInterval(timer);
    },
    async close() {
      await deps.bus.close();
      await Promise.all([mongo.close(), redis.close(), dispatcher.close()]);
    },
  };
}
