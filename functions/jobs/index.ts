// Composition root of jobs: config, dependencies, the app, the server. No logic here.
import { createAppAuthorizer } from '../../shared/app-authorizer.js';
import { loadConfig } from '../../shared/config.js';
import { eventPlaneOf } from '../../shared/event-auth.js';
import { exitOnFatalErrors } from '../../shared/fatal-errors.js';
import { createLogger } from '../../shared/logger.js';
import { serveFunction } from '../../shared/serve.js';
import { createJobsApp, SERVICE } from './app.js';
import { jobsConfigSchema } from './config.js';
import { createJobsRuntime } from './runtime.js';

exitOnFatalErrors(SERVICE);
const config = loadConfig(jobsConfigSchema);
const logger = createLogger(SERVICE, config.LOG_LEVEL);
const runtime = createJobsRuntime(config, { logger });
const plane = eventPlaneOf(config);
runtime.ensureIndexes().catch((error: unknown) => logger.warn({ err: error }, 'could not ensure indexes'));

const handler = createJobsApp(runtime.deps, runtime.scheduler, runtime.devices, {
  logger,
  health: runtime.health,
  authorize: createAppAuthorizer(config, runtime.mongo, logger),
  role: plane.role,
  ...(plane.authenticateEvent ? { authenticateEvent: plane.authenticateEvent } : {}),
});
const ctx = { logger, invocationId: 'scheduler' };
const stopTimer =
  config.JOBS_TICK_INTERVAL_MS > 0 ? runtime.scheduler.startTimer(config.JOBS_TICK_INTERVAL_MS, ctx) : () => undefined;

void serveFunction(SERVICE, handler, {
  port: config.PORT,
  logger,
  onShutdown: async () => {
    stopTimer();
    await runtime.close();
  },
});
