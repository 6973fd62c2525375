// Composition root of dead-letters: config, stores, the app, the framework.
import { loadConfig } from '../../shared/config.js';
import { exitOnFatalErrors } from '../../shared/fatal-errors.js';
import { createLogger } from '../../shared/logger.js';
import { connectMongo } from '../../shared/mongo.js';
import { serveFunction } from '../../shared/serve.js';
import { createDeadLettersApp, SERVICE } from './app.js';
import { deadLettersConfigSchema } from './config.js';

exitOnFatalErrors(SERVICE);
const config = loadConfig(deadLettersConfigSchema, process.env);
const logger = createLogger(SERVICE, config.LOG_LEVEL);
const mongo = connectMongo(config);

void serveFunction(SERVICE, createDeadLettersApp(config, { mongo, logger }), {
  port: config.PORT,
  logger,
  onShutdown: () => mongo.close(),
});
