import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export interface BridgeMetrics {
  registry: Registry;
  received: Counter<'kind'>;
  forwarded: Counter<'type'>;
  retried: Counter<'target'>;
  deadLettered: Counter<'reason'>;
  inFlight: Gauge;
  inFlightBytes: Gauge;
  readsHeld: Counter<'bound'>;
  sessionsConnected: Gauge;
  forwardLatency: Histogram;
  batches: Counter<'reason'>;
  batchMessages: Histogram;
  published: Counter<'qos' | 'outcome'>;
}

/** The bridge's Prometheus metrics, on the registry that `/metrics` serves. */
export function createBridgeMetrics(registry = new Registry(), defaults = true): BridgeMetrics {
  if (defaults) collectDefaultMetrics({ register: registry, prefix: 'kiot_bridge_' });
  const registers = [registry];
  return {
    registry,
    received: new Counter({
      name: 'kiot_bridge_messages_received_total',
      help: 'MQTT messages received from devices, by topic kind',
      labelNames: ['kind'],
      registers,
    }),
    forwarded: new Counter({
      name: 'kiot_bridge_events_forwarded_total',
      help: 'CloudEvents the sink accepted (2xx), by type',
      labelNames: ['type'],
      registers,
    }),
    retried: new Counter({
      name: 'kiot_bridge_delivery_retries_total',
      help: 'POSTs retried after a transient failure, by target (sink, dead_letter)',
      labelNames: ['target'],
      registers,
    }),
    deadLettered: new Counter({
      name: 'kiot_bridge_dead_lettered_total',
      help: 'Messages refused and sent to the dead-letter sink, by reason code',
      labelNames: ['reason'],
      registers,
    }),
    inFlight: new Gauge({
      name: 'kiot_bridge_in_flight_messages',
      help: 'MQTT messages received and not yet acknowledged',
      registers,
    }),
    inFlightBytes: new Gauge({
      name: 'kiot_bridge_in_flight_bytes',
      help: 'Payload bytes of the MQTT messages received and not yet settled (bounded by MAX_IN_FLIGHT_BYTES)',
      registers,
    }),
    readsHeld: new Counter({
      name: 'kiot_bridge_reads_held_total',
      help: 'Times a session stopped reading its connection, by the bound it reached (messages: MAX_IN_FLIGHT, bytes: MAX_IN_FLIGHT_BYTES)',
      labelNames: ['bound'],
      registers,
    }),
    sessionsConnected: new Gauge({
      name: 'kiot_bridge_sessions_connected',
      help: 'Subscriber MQTT sessions currently connected',
      registers,
    }),
    forwardLatency: new Histogram({
      name: 'kiot_bridge_forward_latency_seconds',
      help: 'From receiving an MQTT message to the sink answering 2xx',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30],
      registers,
    }),
    batches: new Counter({
      name: 'kiot_bridge_batches_total',
      help: 'Telemetry batches closed, by what closed them (count, bytes, linger, flush)',
      labelNames: ['reason'],
      registers,
    }),
    batchMessages: new Histogram({
      name: 'kiot_bridge_batch_messages',
      help: 'Device messages per telemetry batch',
      buckets: [1, 2, 5, 10, 25, 50, 100, 200, 500, 1000, 2000],
      registers,
    }),
    published: new Counter({
      name: 'kiot_bridge_mqtt_published_total',
      help: 'io.kiot.mqtt.publish events published to the broker, by QoS and outcome',
      labelNames: ['qos', 'outcome'],
      registers,
    }),
  };
}
