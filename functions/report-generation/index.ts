import { createAppAuthorizer } from '../../shared/app-authorizer.js';
import { loadConfig } from '../../shared/config.js';
import { createEmitter } from '../../shared/emitter.js';
import { eventPlaneOf } from '../../shared/event-auth.js';
import { createEventDispatcher } from '../../shared/event-transport.js';
import { exitOnFatalErrors } from '../../shared/fatal-errors.js';
import { createLogger } from '../../shared/logger.js';
import { connectMongo } from '../../shared/mongo.js';
import { serveFunction } from '../../shared/serve.js';
import { createReportApp } from './app.js';
import { createDeps, ensureIndexes } from './deps.js';
import { runRollups } from './run-rollups.js';
import { runDueSchedules } from './run-schedules.js';
import { configSchema, SERVICE, SOURCE } from './schema.js';

// Composition root: configuration, clients, dependencies, the function, the local timer.
exitOnFatalErrors(SERVICE);
const config = loadConfig(configSchema);
const logger = createLogger(SERVICE, config.LOG_LEVEL);
const mongo = connectMongo(config);
const plane = eventPlaneOf(config);
const emitter = createEmitter({
  sink: config.K_SINK,
  source: SOURCE,
  dispatcher: createEventDispatcher(8),
  headers: plane.producerHeaders,
});
const deps = createDeps({
  mongo,
  emitter,
  logger,
  baseUrl: config.PUBLIC_BASE_URL,
  limits: {
    maxRows: config.REPORT_MAX_ROWS,
    maxDevices: config.REPORT_MAX_DEVICES,
    rollupMaxAgeMs: config.ROLLUP_MAX_AGE_SECONDS * 1000,
  },
});
const handler = createReportApp(deps, {
  logger,
  authorize: createAppAuthorizer(config, mongo, logger),
  role: plane.role,
  ...(plane.authenticateEvent ? { authenticateEvent: plane.authenticateEvent } : {}),
  health: { mongodb: async () => (await mongo.db()).command({ ping: 1 }) },
});

ensureIndexes(deps).catch((error: unknown) => logger.warn({ err: error }, 'indexes not created; queries will scan'));

let timer: NodeJS.Timeout | undefined;
if (config.SCHEDULE_TICK_SECONDS > 0) {
  // Local runs have no PingSource: the same two tasks on a timer, one tick at a time.
  let running = false;
  timer = setInterval(() => {
    if (running) return;
    running = true;
    const ctx = { logger, invocationId: `tick-${Date.now()}` };
    runRollups(undefined, deps, ctx)
      .then(() => runDueSchedules(undefined, deps, ctx))
      .catch((error: unknown) => logger.error({ err: error }, 'scheduled tick failed'))
      .finally(() => (running = false));
  }, config.SCHEDULE_TICK_SECONDS * 1000);
  timer.unref();
}

void serveFunction(SERVICE, handler, {
  port: config.PORT,
  logger,
  onShutdown: async () => {
    if (timer) clearInterval(timer);
    await mongo.close();
  },
});
