// telemetry-ingest: the composition root. Config, the app, the server; nothing else.
import { loadConfig } from '../../shared/config.js';
import { exitOnFatalErrors } from '../../shared/fatal-errors.js';
import { createLogger } from '../../shared/logger.js';
import { serveFunction } from '../../shared/serve.js';
import { createTelemetryIngestApp, SERVICE } from './app.js';
import { configSchema } from './config.js';

exitOnFatalErrors(SERVICE);
const config = loadConfig(configSchema);
const logger = createLogger(SERVICE, config.LOG_LEVEL);
const app = createTelemetryIngestApp({ config, logger });
app.start();
void serveFunction(SERVICE, app.handler, { port: config.PORT, logger, onShutdown: () => app.close() });
