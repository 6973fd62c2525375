import { spawnSync } from 'node:child_process';
import { CronExpressionParser } from 'cron-parser';
import { stringify } from 'yaml';
import { compileTriggerFilter } from '../../../../scripts/router/filters.js';
import type { CloudEventV1 } from '../../../../shared/cloudevents.js';
import { type PendingWork, pendingWorkSchema } from '../../../../shared/pending-work.js';
import { componentOf, isBrokerRef, PING } from './components.js';
import type { K8sObject, Located } from './manifests.js';
import { ROOT } from './manifests.js';

/** What Knative's autoscaler makes of a Knative Service (tools/knative `capacity autoscaling`). */
export interface AutoscalerSettings {
  service: string;
  minScale: number;
  stableWindowSeconds: number;
  scaleDownDelaySeconds: number;
  scaleToZeroGracePeriodSeconds: number;
  scaleToZeroPodRetentionSeconds: number;
  /** From the end of the last request to no pod: stable window + scale-down delay + the scale-to-zero wait. */
  scaleToZeroAfterIdleSeconds: number;
}

let binary: string | undefined;

/** The capacity command of tools/knative, built (or found up to date) on first use. */
export function capacityBinary(): string {
  if (binary) return binary;
  const result = spawnSync('bash', ['scripts/knative-capacity.sh'], { cwd: ROOT, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`scripts/knative-capacity.sh failed:\n${result.stderr}`);
  binary = result.stdout.trim();
  return binary;
}

/** The autoscaling of each Knative Service as serving v0.50.0's own code resolves it, with the release's config-autoscaler. */
export function autoscalerSettings(objects: K8sObject[]): Map<string, AutoscalerSettings> {
  const services = objects.filter((o) => o.kind === 'Service' && o.apiVersion.startsWith('serving.knative.dev/'));
  const input = services.map((o) => stringify(o)).join('---\n');
  const result = spawnSync(capacityBinary(), ['autoscaling', '-'], { input, encoding: 'utf8', maxBuffer: 16 << 20 });
  if (result.status !== 0) throw new Error(`knative-capacity autoscaling exited ${result.status}: ${result.stderr}`);
  const settings = JSON.parse(result.stdout) as AutoscalerSettings[];
  return new Map(settings.map((s) => [s.service, s]));
}

/**
 * Work that comes due on a day without traffic, by the passage of time alone (the premise of an idle day: no
 * device message, no app call, and what earlier days left done). A gated tick (through the tick gate) wakes its
 * function on an idle day only when one of its pending-work queries is one of these:
 * - report schedules come due at their period ends, 00:00 UTC (run-schedules.ts nextPeriodEnd: daily at
 *   midnight, weekly on Monday at midnight);
 * - raw samples age past the retention at any time of day.
 * Commands, outbox entries, rollup marks and live jobs exist only after traffic, so their queries stay empty.
 */
export const IDLE_DAY_WORK: Record<string, 'midnight' | 'any time'> = {
  'report_schedules.nextRunAt': 'midnight',
  'telemetry.ts': 'any time',
};

/** How long one tick keeps a pod beyond the autoscaler's windows: its cold start and its work. */
export const TICK_ALLOWANCE_S = 60;

export interface Wake {
  ping: string;
  service: string;
  /** Seconds from the start of the idle day (negative: the day before). */
  at: number;
}

function tickOf(ping: K8sObject): CloudEventV1<unknown> {
  return {
    specversion: '1.0',
    id: 'tick',
    type: PING,
    source: `/apis/v1/namespaces/${ping.metadata.namespace}/pingsources/${ping.metadata.name}`,
    ...(ping.spec.ceOverrides?.extensions ?? {}),
  } as CloudEventV1<unknown>;
}

/** The Knative Services a PingSource's ticks reach: through the tick gate or the Broker and a Trigger, or straight. */
export function servicesReached(ping: K8sObject, objects: K8sObject[]): { services: string[]; gated: boolean } {
  const located: Located[] = objects.map((doc, index) => ({ file: '(kustomize)', index, doc }));
  const gated = componentOf(ping.spec.sink, located) === 'tick-gate';
  const ref = ping.spec.sink?.ref;
  if (!gated && !isBrokerRef(ping.spec.sink))
    return { services: ref?.apiVersion?.startsWith('serving.knative.dev/') ? [ref.name] : [], gated };
  const tick = tickOf(ping);
  const services = objects
    .filter((o) => o.kind === 'Trigger' && compileTriggerFilter(o.spec)(tick))
    .map((t) => t.spec.subscriber?.ref)
    .filter((r) => r?.apiVersion?.startsWith('serving.knative.dev/'))
    .map((r) => r.name as string);
  return { services, gated };
}

export function pendingWorkOf(ping: K8sObject): PendingWork | undefined {
  const data = JSON.parse(ping.spec.data ?? '{}') as { pending?: unknown };
  return data.pending === undefined ? undefined : pendingWorkSchema.parse(data.pending);
}

/** Cron occurrences of a PingSource from `from` (s) to `to` (s) around `day0` (ms). */
function occurrences(ping: K8sObject, day0: number, from: number, to: number): number[] {
  const cron = CronExpressionParser.parse(ping.spec.schedule, {
    currentDate: new Date(day0 + from * 1000 - 1),
    endDate: new Date(day0 + to * 1000),
    tz: ping.spec.timezone ?? 'UTC',
  });
  const out: number[] = [];
  while (cron.hasNext()) out.push((cron.next().getTime() - day0) / 1000);
  return out;
}

/**
 * The ticks that wake a function on an idle day (and the day before, whose late wakes reach into it):
 * every tick of a PingSource that reaches it directly or through the Broker; of a gated one, every tick when its
 * work can come due at any time of an idle day, the first after midnight when it comes due then, else none.
 */
export function idleDayWakes(objects: K8sObject[], day0: number): Wake[] {
  const wakes: Wake[] = [];
  for (const ping of objects.filter((o) => o.kind === 'PingSource')) {
    const { services, gated } = servicesReached(ping, objects);
    const ticks = occurrences(ping, day0, -86_400, 86_400);
    let times = ticks;
    if (gated) {
      const kinds = (pendingWorkOf(ping) ?? []).map((q) =>
        q.due ? IDLE_DAY_WORK[`${q.collection}.${q.due.field}`] : undefined,
      );
      if (kinds.includes('any time')) times = ticks;
      else if (kinds.includes('midnight'))
        times = [-86_400, 0].map((midnight) => ticks.find((t) => t >= midnight)!).filter((t) => t !== undefined);
      else times = [];
    }
    for (const service of services) for (const at of times) wakes.push({ ping: ping.metadata.name, service, at });
  }
  return wakes;
}

export interface IdleHours {
  service: string;
  /** Minutes at zero in each hour of the idle day (UTC). */
  minutesAtZero: number[];
  /** The longest stretch at zero within the idle day, in minutes. */
  longestMinutes: number;
  /** Hours in which one of its ticks wakes it. */
  wokenInHours: Set<number>;
  awakeSeconds: number;
}

/** Each wake keeps a pod from the tick until the tick's allowance plus the autoscaler's idle time has passed. */
export function idleHours(settings: AutoscalerSettings, wakes: Wake[]): IdleHours {
  const keep = TICK_ALLOWANCE_S + settings.scaleToZeroAfterIdleSeconds;
  const intervals = wakes
    .map((w) => [w.at, w.at + keep] as const)
    .sort((a, b) => a[0] - b[0])
    .reduce<[number, number][]>((merged, [start, end]) => {
      const last = merged[merged.length - 1];
      if (last && start <= last[1]) last[1] = Math.max(last[1], end);
      else merged.push([start, end]);
      return merged;
    }, []);
  const awakeIn = (from: number, to: number) =>
    settings.minScale > 0
      ? to - from
      : intervals.reduce((sum, [s, e]) => sum + Math.max(0, Math.min(e, to) - Math.max(s, from)), 0);
  const minutesAtZero = Array.from({ length: 24 }, (_, h) => (3600 - awakeIn(h * 3600, (h + 1) * 3600)) / 60);
  let longest = 0;
  let free = 0;
  for (let second = 0; second < 86_400; second += 60) {
    free = awakeIn(second, second + 60) === 0 ? free + 1 : 0;
    longest = Math.max(longest, free);
  }
  return {
    service: settings.service,
    minutesAtZero,
    longestMinutes: longest,
    wokenInHours: new Set(wakes.filter((w) => w.at >= 0 && w.at < 86_400).map((w) => Math.floor(w.at / 3600))),
    awakeSeconds: awakeIn(0, 86_400),
  };
}
