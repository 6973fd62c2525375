// The bridge's composition root: `node dist/bridge.js`. Config from the environment only.
import { exitOnFatalErrors } from '../shared/fatal-errors.js';
import { createLogger } from '../shared/logger.js';
import { startBridge } from './bridge.js';
import { loadBridgeConfig } from './config.js';

exitOnFatalErrors('bridge');
const config = loadBridgeConfig(process.env);
const logger = createLogger('bridge', config.LOG_LEVEL);
// No top-level await: the bundle is CommonJS, for V8's code cache (scripts/launcher.cjs). A failed start rejects,
// which exitOnFatalErrors turns into a fatal log line and exit status 1.
void startBridge(config, { logger }).then((bridge) => {
  // SIGTERM (Kubernetes stop): drain, so no session vanishes with messages assigned to it.
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    bridge.drain().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'drain failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
});
