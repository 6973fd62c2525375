import { describe, expect, it } from 'vitest';
import { SWEEP_PENDING_WORK } from '../../../functions/command-dispatch/sweep.js';
import { outboxPendingWork } from '../../../functions/device-registry/outbox.js';
import { configSchema as registryConfig } from '../../../functions/device-registry/schema.js';
import { TICK_PENDING_WORK } from '../../../functions/jobs/scheduler.js';
import { ROLLUPS_PENDING_WORK } from '../../../functions/report-generation/run-rollups.js';
import { nextPeriodEnd, REPORTS_PENDING_WORK } from '../../../functions/report-generation/run-schedules.js';
import { configSchema as ingestConfigSchema } from '../../../functions/telemetry-ingest/config.js';
import { retentionPendingWork } from '../../../functions/telemetry-ingest/sweep-retention.js';
import { tickGateConfigSchema } from '../../../tick-gate/config.js';
import {
  autoscalerSettings,
  IDLE_DAY_WORK,
  type IdleHours,
  idleDayWakes,
  idleHours,
  pendingWorkOf,
  servicesReached,
} from './lib/idle-day.js';
import { kustomize } from './lib/kustomize.js';

// Idle means zero. From the rendered manifests (kubectl kustomize) of the base and of each overlay: every
// PingSource, the Knative Services its ticks reach (through the tick gate or the Broker and a Trigger), and what
// Knative's own autoscaler code makes of each Service (stable window, scale-down delay, the scale-to-zero grace
// period and pod retention of the release's config-autoscaler, via tools/knative `capacity autoscaling`). On an
// idle day each wake keeps a pod for the tick's allowance plus that idle time; the rest of each hour is at zero.
const DAY0 = Date.UTC(2026, 0, 5); // a Monday, 00:00 UTC: weekly report schedules come due too
const TASK_WORK: Record<string, unknown> = {
  'command-sweep': SWEEP_PENDING_WORK,
  'registry-outbox': outboxPendingWork(registryConfig.shape.OUTBOX_STALE_MS.parse(undefined)),
  rollups: ROLLUPS_PENDING_WORK,
  reports: REPORTS_PENDING_WORK,
  'telemetry-retention': retentionPendingWork(ingestConfigSchema.shape.TELEMETRY_RETENTION_DAYS.parse(undefined)),
  'jobs-tick': TICK_PENDING_WORK,
};
/** All of every idle hour outside the hours their own schedules wake them. */
const WHOLLY_IDLE = ['dead-letters', 'report-generation'];

describe.each(['knative', 'knative/overlays/prod', 'knative/overlays/dev'])('idle day: %s', (dir) => {
  const objects = kustomize(dir);
  const settings = autoscalerSettings(objects);
  const wakes = idleDayWakes(objects, DAY0);
  const hours = new Map(
    [...settings.values()].map((s) => [
      s.service,
      idleHours(
        s,
        wakes.filter((w) => w.service === s.service),
      ),
    ]),
  );
  const pings = objects.filter((o) => o.kind === 'PingSource');

  it('covers every Knative Service, api-keys and jobs among them', () => {
    expect([...settings.keys()]).toEqual(expect.arrayContaining(['api-keys', 'jobs', 'dead-letters']));
    expect(settings.size).toBe(
      objects.filter((o) => o.kind === 'Service' && o.apiVersion.startsWith('serving')).length,
    );
  });

  it.each(pings.map((p) => [p.metadata.name, p] as const))(
    'PingSource %s goes through the tick gate with the pending work its task exports',
    (_name, ping) => {
      const { services, gated } = servicesReached(ping, objects);
      expect(gated).toBe(true);
      expect(services).toHaveLength(1);
      const task = (JSON.parse(ping.spec.data) as { task: string }).task;
      expect(pendingWorkOf(ping)).toEqual(TASK_WORK[task]);
      const allowed = tickGateConfigSchema.shape.TICK_GATE_COLLECTIONS.parse(
        objects
          .find((o) => o.kind === 'Deployment' && o.metadata.name === 'tick-gate')!
          .spec.template.spec.containers[0].env.find((e: { name: string }) => e.name === 'TICK_GATE_COLLECTIONS').value,
      );
      for (const query of pendingWorkOf(ping)!) expect(allowed.has(query.collection), query.collection).toBe(true);
    },
  );

  it('the premise holds: report schedules come due at midnight UTC', () => {
    expect(IDLE_DAY_WORK['report_schedules.nextRunAt']).toBe('midnight');
    expect(nextPeriodEnd('daily', DAY0 + 5 * 3_600_000)).toBe(DAY0 + 86_400_000);
    expect(nextPeriodEnd('weekly', DAY0 - 1)).toBe(DAY0);
  });

  const table = (h: IdleHours) =>
    `${h.service}: ${h.minutesAtZero.map((m) => Math.floor(m)).join(' ')} (longest ${h.longestMinutes} min)`;

  it('every function sits at zero for at least 45 minutes of every idle hour', () => {
    const short = [...hours.values()].filter((h) => h.minutesAtZero.some((m) => m < 45)).map(table);
    expect(short).toEqual([]);
  });

  it.each(WHOLLY_IDLE)('%s is at zero all of every idle hour outside the hours its schedules wake it', (service) => {
    const h = hours.get(service)!;
    const notWholly = h.minutesAtZero
      .map((m, hour) => [hour, m] as const)
      .filter(([hour, m]) => !h.wokenInHours.has(hour) && m < 60);
    expect(notWholly, table(h)).toEqual([]);
    // Its schedules wake it at most once a day (daily report schedules, just after midnight).
    expect(h.wokenInHours.size).toBeLessThanOrEqual(1);
  });
});
