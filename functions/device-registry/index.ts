// Composition root of device-registry: `node dist/device-registry.js` serves it on PORT;
// `node dist/device-registry.js mint-api-key --id … --scopes …` mints an app API key (cli/mint-api-key.ts).
import { loadConfig } from '../../shared/config.js';
import { exitOnFatalErrors } from '../../shared/fatal-errors.js';
import { createLogger } from '../../shared/logger.js';
import { serveFunction } from '../../shared/serve.js';
import { mintApiKeyCli } from './cli/mint-api-key.js';
import { buildRegistry } from './compose.js';
import { configSchema, SERVICE } from './schema.js';

exitOnFatalErrors(SERVICE);
if (process.argv[2] === 'mint-api-key') {
  void mintApiKeyCli(process.argv.slice(3), (line) => process.stdout.write(`${line}\n`));
} else {
  const config = loadConfig(configSchema);
  const logger = createLogger(SERVICE, config.LOG_LEVEL);
  if (config.API_KEYS.length === 0) logger.warn('API_KEYS is empty: every app route answers 401');
  const registry = buildRegistry(config, logger);
  void serveFunction(SERVICE, registry.handler, { port: config.PORT, logger, onShutdown: registry.close });
}
