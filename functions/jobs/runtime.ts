import { randomUUID } from 'node:crypto';
import { createDeviceAuthenticator } from '../../shared/device-auth.js';
import { createEmitter } from '../../shared/emitter.js';
import { bearerHeader, createTokenSource } from '../../shared/event-auth.js';
import { createEventDispatcher } from '../../shared/event-transport.js';
import { createLogger, type Logger } from '../../shared/logger.js';
import { connectMongo } from '../../shared/mongo.js';
import { verifySecret } from '../../shared/secrets.js';
import { createArtifactStore } from './artifact-store.js';
import type { JobsConfig } from './config.js';
import type { JobDeps } from './deps.js';
import { createEventPublisher, createMqttPublisher } from './device-publisher.js';
import { createExecutionRepository } from './execution-repository.js';
import { createJobRepository } from './job-repository.js';
import { createScheduler } from './scheduler.js';
import { createTargetResolver } from './targets.js';

/** Builds the real stores and clients from validated config; everything connects on first use. */
export function createJobsRuntime(config: JobsConfig, options: { clock?: () => Date; logger?: Logger } = {}) {
  const mongo = connectMongo(config);
  const dispatcher = createEventDispatcher();
  const emitter = createEmitter({
    sink: config.K_SINK,
    source: '/kiot/jobs',
    dispatcher,
    headers: bearerHeader(createTokenSource(config.EVENT_TOKEN_FILE)),
  });
  const devicePublisher = config.JOBS_MQTT_URL
    ? createMqttPublisher({
        url: config.JOBS_MQTT_URL,
        username: config.JOBS_MQTT_USERNAME,
        password: config.JOBS_MQTT_PASSWORD,
        timeoutMs: config.JOBS_MQTT_TIMEOUT_MS,
        logger: options.logger ?? createLogger('jobs', config.LOG_LEVEL),
      })
    : createEventPublisher(emitter);
  const deps: JobDeps = {
    jobs: createJobRepository(mongo),
    executions: createExecutionRepository(mongo),
    targets: createTargetResolver(mongo),
    artifacts: createArtifactStore(mongo),
    emitter,
    devicePublisher,
    settings: {
      batchSize: config.JOBS_BATCH_SIZE,
      artifactMaxBytes: config.ARTIFACT_MAX_BYTES,
      publicUrl: config.JOBS_PUBLIC_URL.replace(/\/$/, ''),
    },
    clock: options.clock ?? (() => new Date()),
  };
  const scheduler = createScheduler(deps, mongo, {
    holdMs: config.JOBS_TICK_HOLD_MS,
    passIntervalMs: config.JOBS_PASS_INTERVAL_MS,
    owner: randomUUID(),
  });
  const devices = createDeviceAuthenticator(mongo, verifySecret, { ttlMs: config.DEVICE_AUTH_TTL_MS });
  return {
    deps,
    /** The MongoDB handle of the stores (the API-key lookup shares it). */
    mongo,
    scheduler,
    devices,
    health: { mongodb: async () => (await mongo.db()).command({ ping: 1 }) },
    async ensureIndexes() {
      await Promise.all([deps.jobs.ensureIndexes(), deps.executions.ensureIndexes(), deps.artifacts.ensureIndexes()]);
    },
    async close() {
      await Promise.all([mongo.close(), dispatcher.close(), devicePublisher.close()]);
    },
  };
}
export type JobsRuntime = ReturnType<typeof createJobsRuntime>;
