import { createAppAuthorizer } from '../../shared/app-authorizer.js';
import { createEmitter } from '../../shared/emitter.js';
import { eventPlaneOf } from '../../shared/event-auth.js';
import { createEventDispatcher } from '../../shared/event-transport.js';
import type { FunctionHandler } from '../../shared/function-app.js';
import type { Logger } from '../../shared/logger.js';
import { connectMongo } from '../../shared/mongo.js';
import { createRedis } from '../../shared/redis.js';
import { createRegistryApp } from './app.js';
import { createAuthCache } from './auth-cache.js';
import type { RegistryDeps } from './deps.js';
import { createDeviceBroker, createHookOnlyBroker } from './device-broker.js';
import { createDeviceRepository } from './device-repository.js';
import { createDynsecClient } from './dynsec.js';
import { createOutbox, type Outbox } from './outbox.js';
import { createProvisioningRepository } from './provisioning-repository.js';
import { createRegistrationBatchStore } from './registration-batches.js';
import { type RegistryConfig, SERVICE } from './schema.js';

export interface Registry {
  handler: FunctionHandler;
  deps: RegistryDeps;
  outbox: Outbox;
  close(): Promise<void>;
}

/** Builds the real dependencies from validated config; nothing connects before the first request. */
export function buildRegistry(config: RegistryConfig, logger: Logger): Registry {
  const mongo = connectMongo(config);
  const redis = createRedis(config.REDIS_URL);
  const dynsec = createDynsecClient({
    url: config.MQTT_URL,
    username: config.MQTT_USERNAME,
    password: config.MQTT_PASSWORD,
    logger,
  });
  const dispatcher = createEventDispatcher(16);
  const devices = createDeviceRepository(mongo);
  devices.ensureIndexes().catch((error: unknown) => logger.warn({ err: error }, 'outbox index not created'));
  const batches = createRegistrationBatchStore(mongo);
  batches.ensureIndexes().catch((error: unknown) => logger.warn({ err: error }, 'outbox batch index not created'));
  const plane = eventPlaneOf(config);
  const emitter = createEmitter({
    sink: config.K_SINK,
    source: `/kiot/${SERVICE}`,
    dispatcher,
    headers: plane.producerHeaders,
  });
  const outbox = createOutbox({
    store: devices,
    batches,
    emitter,
    logger,
    now: () => deps.now(),
    staleMs: config.OUTBOX_STALE_MS,
    intervalMs: config.OUTBOX_FLUSH_INTERVAL_MS,
    limit: config.OUTBOX_FLUSH_LIMIT,
  });
  const deps: RegistryDeps = {
    devices,
    provisioning: createProvisioningRepository(mongo),
    broker: config.BROKER_ACCESS === 'dynsec' ? createDeviceBroker(dynsec) : createHookOnlyBroker(),
    authCache: createAuthCache(redis, { prefix: config.REDIS_PREFIX, ttlSeconds: config.AUTH_CACHE_TTL_SECONDS }),
    emitter,
    outbox,
    now: () => new Date(),
    replyKey: Buffer.from(config.PROVISIONING_REPLY_KEY, 'base64url'),
    replaySeconds: config.PROVISIONING_REPLAY_SECONDS,
  };
  const app = createRegistryApp(deps, {
    logger,
    authorize: createAppAuthorizer(config, mongo, logger),
    role: plane.role,
    ...(plane.authenticateEvent ? { authenticateEvent: plane.authenticateEvent } : {}),
    health: {
      mongodb: async () => (await mongo.db()).command({ ping: 1 }),
      redis: async () => (await redis.client()).ping(),
      ...(config.BROKER_ACCESS === 'dynsec' ? { broker: () => dynsec.ping() } : {}),
    },
  });
  // Scaled to zero, no timer runs: every request (probes included) may start a flush of what went stale.
  // The app's own properties (its body limit, what it connects at start) stay with it.
  const handler: FunctionHandler = Object.assign(
    (req: Parameters<FunctionHandler>[0], res: Parameters<FunctionHandler>[1]) => {
      outbox.kick();
      return app(req, res);
    },
    app,
  );
  return {
    handler,
    deps,
    outbox,
    async close() {
      await outbox.close();
      await Promise.allSettled([mongo.close(), redis.close(), dynsec.close(), dispatcher.close()]);
    },
  };
}
