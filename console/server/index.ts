// The console's composition root: `node dist/console.js` serves the web console (dist/console/) and passes
// `/api/<capability>/…` on to the capabilities' app APIs (console/README.md).
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exitOnFatalErrors } from '../../shared/fatal-errors.js';
import { createLogger } from '../../shared/logger.js';
import { loadConsoleConfig } from './config.js';
import { createProxy } from './proxy.js';
import { createConsoleServer } from './server.js';
import { loadAssets } from './static-files.js';

exitOnFatalErrors('console');
const config = loadConsoleConfig();
const logger = createLogger('console', config.LOG_LEVEL);
const assets = loadAssets(config.CONSOLE_ASSETS_DIR ?? join(dirname(fileURLToPath(import.meta.url)), 'console'));
const proxy = createProxy({
  timeoutMs: config.CONSOLE_UPSTREAM_TIMEOUT_MS,
  maxBodyBytes: config.CONSOLE_MAX_BODY_BYTES,
  logger,
});
const server = createConsoleServer({ assets, upstreams: config.CONSOLE_UPSTREAMS, proxy, logger });
await new Promise<void>((resolve) => server.listen(config.PORT, resolve));
logger.info(
  { port: (server.address() as AddressInfo).port, upstreams: Object.fromEntries(config.CONSOLE_UPSTREAMS) },
  'console listening',
);

const stop = (signal: string) => {
  logger.info({ signal }, 'stopping');
  // Live streams never end by themselves: close them, so that the server can.
  server.closeAllConnections();
  server.close(() => {
    proxy.close();
    logger.flush();
    process.exit(0);
  });
};
process.once('SIGTERM', () => stop('SIGTERM'));
process.once('SIGINT', () => stop('SIGINT'));
