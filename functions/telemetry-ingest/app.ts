import { Registry } from 'prom-client';
import type { Authorizer } from '../../shared/api-keys.js';
import { createAppAuthorizer } from '../../shared/app-authorizer.js';
import { createDeviceAuthenticator, type VerifySecret } from '../../shared/device-auth.js';
import { createDeviceDirectory } from '../../shared/devices.js';
import { createEmitter, type Emitter } from '../../shared/emitter.js';
import { bearerHeader, createTokenSource, eventPlaneOf } from '../../shared/event-auth.js';
import { createEventDispatcher } from '../../shared/event-transport.js';
import { createFunctionApp, type FunctionHandler, type HandlerContext } from '../../shared/function-app.js';
import type { Logger } from '../../shared/logger.js';
import { connectMongo, type MongoHandle } from '../../shared/mongo.js';
import { openApiRoute } from '../../shared/openapi.js';
import { createRedis, type RedisHandle } from '../../shared/redis.js';
import { verifySecret } from '../../shared/secrets.js';
import { createShadowStore } from '../../shared/shadow-store.js';
import { createAdmissionGate } from './admission.js';
import { alertRoutes } from './alert-routes.js';
import { createAlertRulesRepository } from './alert-rules-repository.js';
import { createAlertStateRepository } from './alert-state-repository.js';
import { createAlertsRepository } from './alerts-repository.js';
import { telemetryBatchRoute } from './batch-route.js';
import type { Config } from './config.js';
import { deviceRoutes } from './device-routes.js';
import { eventRoutes } from './event-routes.js';
import { fleetRoutes } from './fleet-routes.js';
import { createGroupCommit } from './group-commit.js';
import {
  type IngestTelemetryDeps,
  ingestTelemetry,
  ingestTelemetryBatch,
  type TelemetryMessage,
} from './ingest-telemetry.js';
import { createLiveFeed } from './live-feed.js';
import { createLiveHub } from './live-hub.js';
import { createIngestMetrics } from './metrics.js';
import { createPresenceRepository } from './presence-repository.js';
import { recordPresence } from './record-presence.js';
import { redisKeys } from './redis-keys.js';
import { type ReportStateDeps, reportState } from './report-state.js';
import { SOURCE } from './schema.js';
import { sweepRetention } from './sweep-retention.js';
import { createTelemetryRepository, type SampleDocument } from './telemetry-repository.js';

const API_INFO = {
  title: 'kiot telemetry-ingest',
  version: '1.0.0',
  description: 'Device state, telemetry, alerts and alert rules; HTTP ingest for devices.',
};

export const SERVICE = 'telemetry-ingest';

export interface AppOptions {
  config: Config;
  logger: Logger;
  /** Injected in tests; built from the config otherwise. */
  mongo?: MongoHandle;
  redis?: RedisHandle;
  /** The live streams' subscriber connection (its own: subscriber mode serves nothing else). */
  subscriber?: RedisHandle;
  emitter?: Emitter;
  now?: () => number;
  verifySecret?: VerifySecret;
  registry?: Registry;
}

export interface TelemetryIngestApp {
  handler: FunctionHandler;
  /** Starts the background work: indexes, and the local retention timer when configured. */
  start(): void;
  close(): Promise<void>;
}

/** Wires stores, repositories and use cases into the function's handler. */
export function createTelemetryIngestApp(options: AppOptions): TelemetryIngestApp {
  const { config, logger } = options;
  const plane = eventPlaneOf(config);
  const now = options.now ?? Date.now;
  const mongo = options.mongo ?? connectMongo(config);
  // Auto-pipelining: the Redis calls of concurrent events in one tick share one write (ioredis docs).
  const redis = options.redis ?? createRedis(config.REDIS_URL, { autoPipelining: true });
  const dispatcher = createEventDispatcher();
  const emitter =
    options.emitter ??
    createEmitter({ sink: config.K_SINK, source: SOURCE, dispatcher, headers: plane.producerHeaders });
  const deadLetters = createEmitter({
    sink: config.DEAD_LETTER_SINK,
    source: SOURCE,
    dispatcher,
    headers: bearerHeader(createTokenSource(config.DEAD_LETTER_TOKEN_FILE)),
  });
  const registry = options.registry ?? new Registry();
  const metrics = createIngestMetrics(registry);
  const keys = redisKeys(config.REDIS_PREFIX);
  const retentionMs = config.TELEMETRY_RETENTION_DAYS * 86_400_000;
  const ctxOf = (invocationId: string): HandlerContext => ({ logger, invocationId });

  const telemetry = createTelemetryRepository(mongo);
  const groupCommit = createGroupCommit<SampleDocument>({
    maxWaitMs: config.GROUP_COMMIT_MAX_WAIT_MS,
    maxDocs: config.GROUP_COMMIT_MAX_DOCS,
    maxInFlight: config.GROUP_COMMIT_MAX_IN_FLIGHT,
    write: (docs) => telemetry.insertBatch(docs),
    onBatch: (size, ms) => {
      metrics.batchSize.observe(size);
      metrics.insertSeconds.observe(ms / 1000);
    },
  });
  const devices = createDeviceDirectory(mongo, { ttlMs: config.DEVICE_CACHE_TTL_MS, now });
  const presenceTtlSeconds = Math.ceil(retentionMs / 1000);
  const presence = createPresenceRepository(redis, keys, presenceTtlSeconds);
  // The same hashes and documents command-dispatch writes `desired` into (its SHADOW_REDIS_PREFIX).
  const shadows = createShadowStore(redis, mongo, config.REDIS_PREFIX);
  const alertRules = createAlertRulesRepository(mongo, { ttlMs: config.ALERT_RULE_CACHE_TTL_MS, now });
  const alerts = createAlertsRepository(mongo);
  const admission = createAdmissionGate(
    redis,
    keys,
    {
      ratePerSecond: config.RATE_LIMIT_PER_SECOND,
      burst: config.RATE_LIMIT_BURST,
      noticeIntervalMs: config.RATE_LIMIT_NOTICE_INTERVAL_MS,
      dedupTtlSeconds: config.DEDUP_TTL_SECONDS,
      pendingTtlSeconds: 60,
      presenceTtlSeconds,
    },
    presence,
  );

  const live = createLiveFeed(redis, keys, logger);
  // A connection of its own in subscriber mode, opened by the first live stream this replica serves.
  const subscriber = options.subscriber ?? createRedis(config.REDIS_URL, { shardedSubscriber: true });
  const hub = createLiveHub(subscriber, redis, keys);
  const ingestDeps: IngestTelemetryDeps = {
    admission,
    devices,
    samples: { store: (docs) => groupCommit.add(docs), existing: (ids) => telemetry.existing(ids) },
    live,
    policy: {
      maxSamples: config.TELEMETRY_MAX_SAMPLES_PER_MESSAGE,
      maxMetrics: config.TELEMETRY_MAX_METRICS_PER_SAMPLE,
      retentionMs,
      maxFutureMs: config.TELEMETRY_MAX_FUTURE_SECONDS * 1000,
    },
    alertRules,
    alertState: createAlertStateRepository(redis, keys, Math.ceil(retentionMs / 1000)),
    alerts,
    emitter,
    metrics,
    now,
  };
  const stateDeps: ReportStateDeps = {
    admission,
    devices,
    shadows,
    limits: { maxBytes: config.SHADOW_MAX_BYTES, maxDepth: config.SHADOW_MAX_DEPTH },
    emitter,
    metrics,
    now,
  };
  const sweepDeps = { telemetry, retentionMs, metrics, now };
  const ingest = (message: TelemetryMessage, ctx: HandlerContext) => ingestTelemetry(message, ingestDeps, ctx);
  const ingestBatch = (messages: TelemetryMessage[], ctx: HandlerContext) =>
    ingestTelemetryBatch(messages, ingestDeps, ctx);

  const authorizeApp = createAppAuthorizer(config, mongo, logger);
  const deviceAuth = createDeviceAuthenticator(mongo, options.verifySecret ?? verifySecret, {
    ttlMs: config.CREDENTIAL_CACHE_TTL_MS,
    now,
  });
  // A device's own routes take its HTTP Basic credential, every other route an app key: either is checked
  // before the body is read.
  const authorize: Authorizer = async (request, route) => {
    if (route.security !== 'device') return authorizeApp(request, route);
    await deviceAuth.authenticate(request.params.id ?? '', request.headers.authorization);
    return undefined;
  };
  const operations = [
    ...deviceRoutes({
      devices,
      shadows,
      presence,
      telemetry,
      ingest,
      ingestBatch,
      maxBatchMessages: config.HTTP_INGEST_MAX_MESSAGES,
      now,
    }),
    ...alertRoutes({ alertRules, alerts, now }),
    ...fleetRoutes({
      devices,
      presence,
      alerts,
      live,
      hub,
      stream: {
        heartbeatMs: config.LIVE_HEARTBEAT_SECONDS * 1000,
        maxDurationMs: config.LIVE_STREAM_MAX_SECONDS * 1000,
        maxQueue: config.LIVE_MAX_QUEUE,
      },
      now,
    }),
  ];
  const handler = createFunctionApp({
    service: SERVICE,
    logger,
    registry,
    events: [
      ...eventRoutes({
        ingest,
        reportState: (message, ctx) => reportState(message, stateDeps, ctx),
        recordPresence: (message, ctx) => recordPresence(message, { devices, presence, emitter, metrics }, ctx),
        sweep: (ctx) => sweepRetention(sweepDeps, ctx),
        now,
      }),
      telemetryBatchRoute({ ingestBatch, deadLetters, metrics, now }),
    ],
    routes: [...operations, openApiRoute(API_INFO, operations)],
    authorize,
    role: plane.role,
    ...(plane.authenticateEvent ? { authenticateEvent: plane.authenticateEvent } : {}),
    health: {
      mongodb: async () => (await mongo.db()).command({ ping: 1 }),
      redis: async () => (await redis.client()).ping(),
    },
  });

  let timer: NodeJS.Timeout | undefined;
  const ensureIndexes = () =>
    telemetry
      .ensureIndexes(Math.ceil(retentionMs / 1000), logger)
      .catch((error: unknown) => logger.warn({ err: error }, 'could not create indexes yet'));
  return {
    handler,
    start() {
      void ensureIndexes();
      if (config.RETENTION_SWEEP_INTERVAL_SECONDS > 0) {
        timer = setInterval(() => {
          void ensureIndexes();
          sweepRetention(sweepDeps, ctxOf('retention-timer')).catch((error: unknown) =>
            logger.warn({ err: error }, 'retention sweep failed'),
          );
        }, config.RETENTION_SWEEP_INTERVAL_SECONDS * 1000);
        timer.unref();
      }
    },
    async close() {
      if (timer) clearInterval(timer);
      await groupCommit.drain();
      if (!options.subscriber) await hub.close();
      if (!options.redis) await redis.close();
      if (!options.mongo) await mongo.close();
    },
  };
}
