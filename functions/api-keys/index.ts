// Composition root of api-keys: config, the store, the app, the server. No logic here.
import { createAppAuthorizer } from '../../shared/app-authorizer.js';
import { loadConfig } from '../../shared/config.js';
import { exitOnFatalErrors } from '../../shared/fatal-errors.js';
import { createLogger } from '../../shared/logger.js';
import { connectMongo } from '../../shared/mongo.js';
import { serveFunction } from '../../shared/serve.js';
import { createApiKeysApp } from './app.js';
import { apiKeysConfigSchema } from './config.js';
import { createKeyRepository } from './key-repository.js';
import { SERVICE } from './schema.js';

exitOnFatalErrors(SERVICE);
const config = loadConfig(apiKeysConfigSchema);
const logger = createLogger(SERVICE, config.LOG_LEVEL);
if (config.API_KEYS.length === 0)
  logger.warn('API_KEYS is empty: no bootstrap key, so no key can create the first one');
const mongo = connectMongo(config);
const keys = createKeyRepository(mongo);
keys.ensureIndexes().catch((error: unknown) => logger.warn({ err: error }, 'could not ensure indexes'));

const handler = createApiKeysApp(
  { keys, now: () => new Date(), bootstrapIds: new Set(config.API_KEYS.map((entry) => entry.id)) },
  {
    logger,
    authorize: createAppAuthorizer(config, mongo, logger),
    health: { mongodb: async () => (await mongo.db()).command({ ping: 1 }) },
  },
);
void serveFunction(SERVICE, handler, { port: config.PORT, logger, onShutdown: () => mongo.close() });
