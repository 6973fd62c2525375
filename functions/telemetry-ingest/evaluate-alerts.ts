import type { DeviceView } from '../../shared/devices.js';
import type { Emitter } from '../../shared/emitter.js';
import type { AlertRulesRepository } from './alert-rules-repository.js';
import type { AlertObservation, AlertStateRepository, AlertStateResult } from './alert-state-repository.js';
import type { AlertsRepository } from './alerts-repository.js';
import type { IngestMetrics } from './metrics.js';
import { type AlertRule, type Comparison, EMITTED_TYPES } from './schema.js';
import type { ValidSample } from './validate-telemetry.js';

/** What a rule reads of a sample: a validated one or its stored document (a batch hands its documents). */
export type AlertSample = Pick<ValidSample, 'ts' | 'metrics'>;

export interface AlertDeps {
  alertRules: AlertRulesRepository;
  alertState: AlertStateRepository;
  alerts: AlertsRepository;
  emitter: Emitter;
  metrics: IngestMetrics;
  now(): number;
}

export function compare(value: number, comparison: Comparison, threshold: number): boolean {
  switch (comparison) {
    case '>':
      return value > threshold;
    case '>=':
      return value >= threshold;
    case '<':
      return value < threshold;
    case '<=':
      return value <= threshold;
  }
}

/** The samples of one message as the rule sees them, in time order. */
export function observe(rule: AlertRule, samples: readonly AlertSample[]): AlertObservation[] {
  const clearAt = rule.clearThreshold ?? rule.threshold;
  return samples
    .filter((sample) => sample.metrics[rule.metric] !== undefined)
    .map((sample) => {
      const value = sample.metrics[rule.metric]!;
      return {
        ts: sample.ts.getTime(),
        value,
        breach: compare(value, rule.comparison, rule.threshold),
        clear: !compare(value, rule.comparison, clearAt),
      };
    })
    .sort((a, b) => a.ts - b.ts);
}

/**
 * Feeds the stored samples to every rule of the device. Transitions happen in Redis atomically; the
 * one caller that gets the publication lease stores each unpublished one in `alerts` and emits it as
 * `io.kiot.alert.raised|cleared` with a stable id, and only then marks it published, so a failure in
 * between republishes the same alert (same ids, idempotent) on a later evaluation instead of losing it.
 */
export async function evaluateAlerts(
  device: DeviceView,
  samples: readonly AlertSample[],
  deps: AlertDeps,
): Promise<void> {
  await evaluateAlertRules(device, await deps.alertRules.forDevice(device.id, device.type), samples, deps);
}

/** The same with the device's rules already looked up (a batch looks up every device's at once). */
export async function evaluateAlertRules(
  device: DeviceView,
  rules: AlertRule[],
  samples: readonly AlertSample[],
  deps: AlertDeps,
): Promise<void> {
  await Promise.all(
    rules.map(async (rule) => {
      const observations = observe(rule, samples);
      if (observations.length === 0) return;
      const forMs = rule.forSeconds * 1000;
      const state = await deps.alertState.evaluate(
        device.id,
        rule.id,
        { forSamples: rule.forSamples, forMs },
        observations,
        deps.now(),
      );
      if (!state.claimed) return;
      try {
        for (let seq = state.published + 1; seq <= state.seq; seq += 1)
          await publishTransition(rule, device.id, seq, state, deps);
      } catch (error) {
        await deps.alertState.releaseLease(device.id, rule.id).catch(() => undefined);
        throw error;
      }
      await deps.alertState.markPublished(device.id, rule.id, state.seq);
    }),
  );
}

async function publishTransition(
  rule: AlertRule,
  deviceId: string,
  seq: number,
  state: AlertStateResult,
  deps: AlertDeps,
): Promise<void> {
  const raised = seq % 2 === 1;
  const episode = Math.ceil(seq / 2);
  const alertId = `${rule.id}:${deviceId}:${episode}`;
  // The state keeps the sample of the latest transition of each kind; an older unpublished one (rare:
  // two failures in a row) is published with the time of publication and no value.
  const latestOfKind = state.seq % 2 === seq % 2 ? state.seq : state.seq - 1;
  const point = seq === latestOfKind ? (raised ? state.lastRaised : state.lastCleared) : undefined;
  const at = new Date(point?.ts ?? Date.now());
  const value = point?.value ?? null;
  const fields = {
    ruleId: rule.id,
    deviceId,
    metric: rule.metric,
    comparison: rule.comparison,
    threshold: rule.threshold,
    clearThreshold: rule.clearThreshold ?? rule.threshold,
    severity: rule.severity,
  };
  const base = { _id: alertId, ...fields };
  if (raised) await deps.alerts.raise({ ...base, raisedAt: at, raisedValue: value });
  else await deps.alerts.clear(alertId, at, value, base);
  await deps.emitter.emit({
    type: raised ? EMITTED_TYPES.alertRaised : EMITTED_TYPES.alertCleared,
    id: `${alertId}:${raised ? 'raised' : 'cleared'}`,
    subject: deviceId,
    time: at.toISOString(),
    data: { alertId, ...fields, ruleName: rule.name ?? null, value, at: at.toISOString() },
  });
  deps.metrics.alertTransitions.inc({ transition: raised ? 'raised' : 'cleared' });
}
