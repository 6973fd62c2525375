// The router's composition root: `node dist/router.js` (scripts/stack.sh starts it). Tests start it with
// `startRouter` from index.ts instead. `node dist/router.js senders <apiVersion> <kind> <name>` prints who
// may send there, by the EventPolicies of knative/.
import { loadConfig } from '../../shared/config.js';
import { exitOnFatalErrors } from '../../shared/fatal-errors.js';
import { createLogger } from '../../shared/logger.js';
import { loadEventPolicies } from './event-policies.js';
import { type RouterConfig, routerConfigSchema, startRouter } from './index.js';

async function printSenders(config: RouterConfig, args: string[]): Promise<void> {
  const [apiVersion, kind, name] = args;
  if (!apiVersion || !kind || !name) throw new Error('usage: senders <apiVersion> <kind> <name>');
  const policies = await loadEventPolicies(config.KNATIVE_DIR, config.ROUTER_NAMESPACE);
  const senders = policies.sendersTo({ apiVersion, kind, name, namespace: config.ROUTER_NAMESPACE });
  process.stdout.write(`${senders.join(',')}\n`);
}

async function serve(config: RouterConfig): Promise<void> {
  const logger = createLogger('router', config.LOG_LEVEL);
  const router = await startRouter(config, { logger });
  const stop = (signal: string) => {
    logger.info({ signal }, 'shutting down');
    void router.close({ drainTimeoutMs: config.ROUTER_DRAIN_TIMEOUT_MS }).finally(() => {
      logger.flush();
      process.exit(0);
    });
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

exitOnFatalErrors('router');
const config = loadConfig(routerConfigSchema, process.env);
await (process.argv[2] === 'senders' ? printSenders(config, process.argv.slice(3)) : serve(config));
