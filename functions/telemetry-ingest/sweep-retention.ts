import type { HandlerContext } from '../../shared/function-app.js';
import type { PendingWork } from '../../shared/pending-work.js';
import { TELEMETRY_COLLECTION } from '../../shared/telemetry.js';
import type { IngestMetrics } from './metrics.js';
import type { TelemetryRepository } from './telemetry-repository.js';

export interface SweepDeps {
  telemetry: TelemetryRepository;
  retentionMs: number;
  metrics: IngestMetrics;
  now(): number;
}

/**
 * What the retention tick has to do, as the tick gate checks it before the tick may wake telemetry-ingest
 * (knative/telemetry-ingest/ping-source-retention.yaml carries it for the default TELEMETRY_RETENTION_DAYS; a
 * test compares): a sample older than the retention. Where a TTL monitor removes them, the tick never wakes it.
 */
export const retentionPendingWork = (retentionDays: number): PendingWork => [
  { collection: TELEMETRY_COLLECTION, due: { field: 'ts', graceSeconds: retentionDays * 86_400 } },
];

/**
 * Removes raw samples past the retention. The TTL index does this on servers with a TTL monitor; the
 * sweep covers those without one (mongo-java-server, FerretDB, some DocumentDB setups) and is
 * harmless where both run. Triggered by a PingSource in production and a timer locally.
 */
export async function sweepRetention(deps: SweepDeps, ctx: HandlerContext): Promise<number> {
  const cutoff = new Date(deps.now() - deps.retentionMs);
  const removed = await deps.telemetry.deleteOlderThan(cutoff);
  deps.metrics.retentionRemoved.inc(removed);
  ctx.logger.info({ cutoff: cutoff.toISOString(), removed }, 'retention sweep');
  return removed;
}
