import { backoffDelayMs } from '../../shared/event-transport.js';
import { type ResolvedDestination, resolveDestination, type ServiceMap } from './destinations.js';
import { parseIsoDurationMs } from './iso-duration.js';
import type { DeliverySpec } from './manifest-schema.js';

/** How one Trigger's events are sent: Knative's RetryConfig plus the resolved dead-letter sink. */
export interface DeliveryPolicy {
  /** Retries after the first attempt (`retry`): at most `retry + 1` attempts. */
  retry: number;
  /** `backoffPolicy` with `backoffDelay`; without both Knative waits 0 between attempts. */
  backoff?: { policy: 'linear' | 'exponential'; delayMs: number };
  /** Per-attempt timeout (`timeout`, beta in Knative). */
  timeoutMs: number;
  format: 'binary' | 'json';
  deadLetterSink?: ResolvedDestination;
}

/**
 * Without `delivery.timeout` Knative's dispatcher sets no per-attempt deadline; the subscriber's own
 * request timeout (Knative Serving's default revision timeout: 300 s) ends a hung request instead.
 */
export const DEFAULT_ATTEMPT_TIMEOUT_MS = 300_000;

/**
 * Knative's RetryConfigFromDeliverySpec. The Trigger's delivery replaces the Broker's as a whole (the
 * MT broker reconciler copies `t.Spec.Delivery`, or `b.Spec.Delivery` when the Trigger has none); a
 * dead-letter ref is resolved in the namespace of the object that declares it.
 */
export function deliveryPolicyOf(
  spec: DeliverySpec | undefined,
  namespace: string,
  services: ServiceMap,
): DeliveryPolicy {
  const policy: DeliveryPolicy = {
    retry: spec?.retry ?? 0,
    timeoutMs: (spec?.timeout && parseIsoDurationMs(spec.timeout)) || DEFAULT_ATTEMPT_TIMEOUT_MS,
    format: spec?.format ?? 'binary',
  };
  // Knative delivery spec: backoffDelay is ISO 8601, used only together with backoffPolicy.
  if (spec?.backoffPolicy && spec.backoffDelay) {
    policy.backoff = { policy: spec.backoffPolicy, delayMs: parseIsoDurationMs(spec.backoffDelay) ?? 0 };
  }
  if (spec?.deadLetterSink) policy.deadLetterSink = resolveDestination(spec.deadLetterSink, namespace, services);
  return policy;
}

/**
 * The wait before retry number `retry` (1-based). Knative delivery spec: "For linear policy, backoff
 * delay is backoffDelay*<numberOfRetries>. For exponential policy, backoff delay is
 * backoffDelay*2^<numberOfRetries>."
 */
export function retryDelayMs(policy: DeliveryPolicy, retry: number): number {
  if (!policy.backoff) return 0;
  return backoffDelayMs({ policy: policy.backoff.policy, baseMs: policy.backoff.delayMs }, retry);
}

/** The whole schedule of waits, for logs and tests: `[wait before retry 1, …, before retry n]`. */
export function backoffSchedule(policy: DeliveryPolicy): number[] {
  return Array.from({ length: policy.retry }, (_, index) => retryDelayMs(policy, index + 1));
}
