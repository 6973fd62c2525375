import { Counter, Gauge, Registry } from 'prom-client';

/** The router's counters, on a registry of its own so several routers (tests) never collide. */
export interface RouterMetrics {
  registry: Registry;
  accepted: Counter<'broker'>;
  delivered: Counter<'trigger'>;
  retried: Counter<'trigger'>;
  deadLettered: Counter<'trigger' | 'destination'>;
  replayed: Counter;
  /** Deliveries waiting for their Service to answer its health check (service-readiness.ts). */
  held: Gauge;
  /** Deliveries waiting out a Trigger's backoff before their next attempt (deliver.ts). */
  backingOff: Gauge;
}

/** `journalPending`: events accepted and not yet delivered to every Trigger (read at each scrape). */
export function createRouterMetrics(registry = new Registry(), journalPending: () => number = () => 0): RouterMetrics {
  new Gauge({
    name: 'kiot_router_journal_pending_events',
    help: 'Events in the journal whose deliveries have not all ended',
    registers: [registry],
    collect() {
      this.set(journalPending());
    },
  });
  return {
    registry,
    accepted: new Counter({
      name: 'kiot_router_events_accepted_total',
      help: 'CloudEvents accepted by a broker ingress (including reply events)',
      labelNames: ['broker'],
      registers: [registry],
    }),
    delivered: new Counter({
      name: 'kiot_router_events_delivered_total',
      help: 'CloudEvents a Trigger subscriber accepted with 2xx',
      labelNames: ['trigger'],
      registers: [registry],
    }),
    retried: new Counter({
      name: 'kiot_router_delivery_retries_total',
      help: 'Retries of a delivery to a Trigger subscriber',
      labelNames: ['trigger'],
      registers: [registry],
    }),
    deadLettered: new Counter({
      name: 'kiot_router_events_dead_lettered_total',
      help: 'CloudEvents given up on, by Trigger and where they went (sink or file)',
      labelNames: ['trigger', 'destination'],
      registers: [registry],
    }),
    replayed: new Counter({
      name: 'kiot_router_events_replayed_total',
      help: 'Events an earlier run journaled and did not finish, delivered again at start',
      registers: [registry],
    }),
    held: new Gauge({
      name: 'kiot_router_deliveries_held',
      help: 'Deliveries waiting for their Service (starting, or restarting after it died) to answer its health check',
      registers: [registry],
    }),
    backingOff: new Gauge({
      name: 'kiot_router_deliveries_backing_off',
      help: 'Deliveries whose last attempt failed, waiting out the backoff before the next (to a subscriber or a dead-letter sink)',
      registers: [registry],
    }),
  };
}
