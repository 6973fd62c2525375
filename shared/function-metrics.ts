import { Counter, Histogram, type Registry } from 'prom-client';

/** The metrics every function exposes on `/metrics`, registered in the function's own registry. */
export function createFunctionMetrics(registry: Registry) {
  return {
    eventCounter: new Counter({
      name: 'kiot_events_total',
      help: 'CloudEvents handled, by type and outcome',
      labelNames: ['type', 'status'],
      registers: [registry],
    }),
    eventDuration: new Histogram({
      name: 'kiot_event_duration_seconds',
      help: 'Time to handle one CloudEvent',
      labelNames: ['type'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    httpCounter: new Counter({
      name: 'kiot_http_requests_total',
      help: 'App HTTP requests, by route and status',
      labelNames: ['route', 'status'],
      registers: [registry],
    }),
  };
}
