// What the build and the benches read from knative/deploy-values.json, the values the manifests are rendered from.
import { readFileSync } from 'node:fs';

/**
 * NODE_OPTIONS a deployable runs with in production (its heap cap under the memory limit), from
 * knative/deploy-values.json; '' when it sets none.
 * @param {string} deployable bridge, tick-gate or a function's name
 * @returns {string}
 */
export function productionNodeOptions(deployable) {
  const values = JSON.parse(readFileSync('knative/deploy-values.json', 'utf8'));
  const env =
    deployable === 'bridge'
      ? values.bridge?.env
      : deployable === 'tick-gate'
        ? values.tickGate?.env
        : values.services?.[deployable]?.env;
  return env?.NODE_OPTIONS ?? '';
}

/**
 * The Knative Service a function's Triggers address: `<name>-events`, its cluster-local receiver, where the values
 * split it (`events`, scripts/deploy-lib/values.mjs knativeServicesOf), else `<name>` itself. Locally one process
 * serves both (the stack gives it that receiver's audience and senders).
 * @param {string} fn a function's name
 * @returns {string}
 */
export function eventReceiverOf(fn) {
  const values = JSON.parse(readFileSync('knative/deploy-values.json', 'utf8'));
  return values.services?.[fn]?.events ? `${fn}-events` : fn;
}
