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
