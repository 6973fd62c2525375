// What the build and the benches read from knative/deploy-values.json, the values the manifests are rendered from.
import { readFileSync } from 'node:fs';

/**
 * The Node arguments a deployable runs with in production (`nodeArgs`, knative/deploy-values.json: its heap, sized
 * under its memory limit), which the manifests put between `node` and `dist/<name>.js` (scripts/deploy-lib/values.mjs
 * nodeCommandOf); [] when it has none. The build trains each code cache under them, and the benches start each
 * deployable with them: V8 ignores a code cache made under other flags.
 * @param {string} deployable bridge, tick-gate or a function's name
 * @returns {string[]}
 */
export function productionNodeArgs(deployable) {
  const values = JSON.parse(readFileSync('knative/deploy-values.json', 'utf8'));
  const spec =
    deployable === 'bridge'
      ? values.bridge
      : deployable === 'tick-gate'
        ? values.tickGate
        : values.services?.[deployable];
  return spec?.nodeArgs ?? [];
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
