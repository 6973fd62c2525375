import { Counter, Histogram, type Registry } from 'prom-client';

/** The capability's own series, next to the shared `kiot_events_total` on the same `/metrics`. */
export function createIngestMetrics(registry: Registry) {
  const registers = [registry];
  return {
    samplesStored: new Counter({
      name: 'kiot_telemetry_samples_stored_total',
      help: 'Samples acknowledged by MongoDB',
      registers,
    }),
    duplicates: new Counter({
      name: 'kiot_telemetry_duplicates_total',
      help: 'Device messages dropped as redeliveries of a stored event',
      registers,
    }),
    rejected: new Counter({
      name: 'kiot_telemetry_rejected_total',
      help: 'Device messages refused, by reason',
      labelNames: ['code'],
      registers,
    }),
    rateLimited: new Counter({
      name: 'kiot_telemetry_rate_limited_total',
      help: 'Device messages refused by the per-device rate limit',
      registers,
    }),
    noticeFailures: new Counter({
      name: 'kiot_telemetry_notice_failures_total',
      help: 'Rejection notices that could not be emitted to K_SINK',
      registers,
    }),
    alertTransitions: new Counter({
      name: 'kiot_alert_transitions_total',
      help: 'Alert transitions published',
      labelNames: ['transition'],
      registers,
    }),
    messages: new Counter({
      name: 'kiot_telemetry_batch_messages_total',
      help: 'Device messages of io.kiot.telemetry.batch events, by outcome (stored, duplicate, refused)',
      labelNames: ['outcome'],
      registers,
    }),
    batchItems: new Histogram({
      name: 'kiot_telemetry_batch_items',
      help: 'Device messages per io.kiot.telemetry.batch event',
      buckets: [1, 2, 5, 10, 25, 50, 100, 200, 500, 1000, 5000],
      registers,
    }),
    batchAge: new Histogram({
      name: 'kiot_telemetry_batch_age_seconds',
      help: 'Age of an io.kiot.telemetry.batch on arrival: from the bridge closing it (its time) to this function',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    batchSize: new Histogram({
      name: 'kiot_telemetry_group_commit_docs',
      help: 'Samples per group-commit insert',
      buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500],
      registers,
    }),
    insertSeconds: new Histogram({
      name: 'kiot_telemetry_insert_seconds',
      help: 'Duration of one group-commit insert, until MongoDB acknowledged it',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    retentionRemoved: new Counter({
      name: 'kiot_telemetry_retention_removed_total',
      help: 'Samples removed by the retention sweep',
      registers,
    }),
  };
}

export type IngestMetrics = ReturnType<typeof createIngestMetrics>;
