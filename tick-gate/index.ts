// The tick gate's composition root: `node dist/tick-gate.js`. PingSources send their ticks here (knative/*/
// ping-source*.yaml); each goes on to the Broker only when its task has pending work (gate.ts).
import type { AddressInfo } from 'node:net';
import { Counter, Registry } from 'prom-client';
import { createEmitter } from '../shared/emitter.js';
import { eventPlaneOf } from '../shared/event-auth.js';
import { createEventDispatcher } from '../shared/event-transport.js';
import { exitOnFatalErrors } from '../shared/fatal-errors.js';
import { createFunctionApp, eventRoute } from '../shared/function-app.js';
import { createLogger } from '../shared/logger.js';
import { createMongo } from '../shared/mongo.js';
import { createPlainServer } from '../shared/plain-http-server.js';
import { loadTickGateConfig } from './config.js';
import { admitTick, PING_TYPE, tickDataSchema } from './gate.js';

exitOnFatalErrors('tick-gate');
const config = loadTickGateConfig();
const logger = createLogger('tick-gate', config.LOG_LEVEL);
const mongo = createMongo(config.MONGODB_URL, config.MONGODB_DB, { maxPoolSize: 4 });
const dispatcher = createEventDispatcher(4);
const plane = eventPlaneOf(config);
const registry = new Registry();
const ticks = new Counter({
  name: 'kiot_tick_gate_ticks_total',
  help: 'PingSource ticks by task and verdict: forwarded (pending work), skipped (none), forwarded_unchecked (MongoDB did not answer)',
  labelNames: ['task', 'verdict'],
  registers: [registry],
});

const deps = {
  db: () => mongo.db(),
  emitter: createEmitter({
    sink: config.K_SINK,
    source: '/kiot/tick-gate',
    dispatcher,
    headers: plane.producerHeaders,
  }),
  collections: config.TICK_GATE_COLLECTIONS,
  clock: () => new Date(),
  count: (task: string, verdict: string) => ticks.inc({ task, verdict }),
};

const app = createFunctionApp({
  service: 'tick-gate',
  logger,
  registry,
  ...(plane.authenticateEvent ? { authenticateEvent: plane.authenticateEvent } : {}),
  events: [
    eventRoute({
      type: PING_TYPE,
      data: tickDataSchema,
      handle: async (event, data, ctx) => {
        await admitTick(event, data, deps, ctx);
      },
    }),
  ],
  health: { mongodb: async () => (await mongo.db()).command({ ping: 1 }) },
});

const server = createPlainServer(app, 64 * 1024);
server.listen(config.PORT, () => logger.info({ port: (server.address() as AddressInfo).port }, 'tick gate listening'));

const stop = (signal: string) => {
  logger.info({ signal }, 'stopping');
  server.close(() => {
    void Promise.allSettled([mongo.close(), dispatcher.close()]).then(() => {
      logger.flush();
      process.exit(0);
    });
  });
};
process.once('SIGTERM', () => stop('SIGTERM'));
process.once('SIGINT', () => stop('SIGINT'));
