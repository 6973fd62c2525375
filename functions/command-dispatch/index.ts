// Composition root of command-dispatch: config, dependencies, the app, the server. No logic here.
import { createAppAuthorizer } from '../../shared/app-authorizer.js';
import { loadConfig } from '../../shared/config.js';
import { eventPlaneOf } from '../../shared/event-auth.js';
import { exitOnFatalErrors } from '../../shared/fatal-errors.js';
import { createLogger } from '../../shared/logger.js';
import { serveFunction } from '../../shared/serve.js';
import { createCommandDispatchApp, SERVICE } from './app.js';
import { commandDispatchConfigSchema } from './config.js';
import { createCommandRuntime } from './runtime.js';

exitOnFatalErrors(SERVICE);
const config = loadConfig(commandDispatchConfigSchema);
const logger = createLogger(SERVICE, config.LOG_LEVEL);
const runtime = createCommandRuntime(config);
const plane = eventPlaneOf(config);
runtime.deps.commands
  .ensureIndexes()
  .catch((error: unknown) => logger.warn({ err: error }, 'could not ensure indexes'));

const handler = createCommandDispatchApp(runtime.deps, {
  logger,
  health: runtime.health,
  authorize: createAppAuthorizer(config, runtime.mongo, logger),
  role: plane.role,
  ...(plane.authenticateEvent ? { authenticateEvent: plane.authenticateEvent } : {}),
});
const stopSweep =
  config.COMMAND_SWEEP_INTERVAL_MS > 0
    ? runtime.startSweepTimer(config.COMMAND_SWEEP_INTERVAL_MS, logger)
    : () => undefined;

void serveFunction(SERVICE, handler, {
  port: config.PORT,
  logger,
  onShutdown: async () => {
    stopSweep();
    await runtime.close();
  },
});
