// Reads knative/deploy-values.json: the one place deploy values come from. Both the manifest renderer
// (render.mjs) and the kn commands (kn.mjs) take everything from here, so they cannot disagree.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const VALUES_FILE = join(ROOT, 'knative', 'deploy-values.json');

/** An env entry that reads a key: `NAME` (the key has the same name) or `NAME=KEY`. */
export function keyRef(entry) {
  const [name, key] = entry.split('=');
  return { name, key: key ?? name };
}

/**
 * The container's command: `node`, the deployable's Node arguments (`nodeArgs`: its heap, sized under its memory
 * limit, as command-line flags because `--initial-old-space-size` is not allowed in NODE_OPTIONS), its launcher.
 * The build trains each code cache under these flags and bench:coldstart starts each deployable with them
 * (scripts/deploy-values.mjs): V8 ignores a code cache made under other flags.
 * @param {{ nodeArgs?: string[] }} spec a function's, the bridge's or the tick gate's values
 * @param {string} deployable the bundle it runs: dist/<deployable>.js
 */
export function nodeCommandOf(spec, deployable) {
  return ['node', ...(spec.nodeArgs ?? []), `dist/${deployable}.js`];
}

export function loadValues(file = VALUES_FILE) {
  const values = JSON.parse(readFileSync(file, 'utf8'));
  const problems = [];
  const secretKeys = new Set(Object.keys(values.secret?.keys ?? {}));
  const configKeys = new Set(Object.keys(values.configMap?.data ?? {}));
  const check = (owner, spec) => {
    for (const entry of spec.fromConfigMap ?? []) {
      if (!configKeys.has(keyRef(entry).key)) problems.push(`${owner}: ConfigMap has no key ${keyRef(entry).key}`);
    }
    for (const entry of spec.fromSecret ?? []) {
      if (!secretKeys.has(keyRef(entry).key))
        problems.push(`${owner}: the Secret template has no key ${keyRef(entry).key}`);
    }
  };
  for (const [name, spec] of Object.entries(values.services ?? {})) check(name, spec);
  if (values.bridge) check(values.bridge.name, values.bridge);
  if (values.tickGate) check(values.tickGate.name, values.tickGate);
  if (problems.length > 0) throw new Error(`${file}: ${problems.join('; ')}`);
  return values;
}

/** The image reference for a registry and tag; the bare name (kustomize's `images:` rewrites it) otherwise. */
export function imageRef(values, registry, tag) {
  if (!registry) return tag ? `${values.image}:${tag}` : values.image;
  return `${registry.replace(/\/+$/, '')}/${values.image}:${tag ?? 'latest'}`;
}

/**
 * Every Knative Service the values make, in order: a function whose entry has `events` is split by audience
 * (docs/deploy.md "Events only from the eventing plane") into its public app Service `<name>` (FUNCTION_ROLE=app:
 * refuses every CloudEvent) and the cluster-local `<name>-events` the Triggers address (FUNCTION_ROLE=events: serves
 * nothing but events), both `node dist/<name>.js` from the same image; `events` may override the app's settings
 * (description, scale, containerConcurrency, timeoutSeconds, resources, env). Any other function is one Service.
 * @returns {{ name: string, function: string, role?: 'app' | 'events', spec: any }[]}
 */
export function knativeServicesOf(values) {
  return Object.entries(values.services).flatMap(([name, entry]) => {
    const { events, ...spec } = entry;
    if (!events) return [{ name, function: name, spec }];
    const role = (value, own) => ({ ...own, env: { ...own.env, FUNCTION_ROLE: value } });
    return [
      { name, function: name, role: 'app', spec: role('app', { ...spec, visibility: 'public' }) },
      {
        name: `${name}-events`,
        function: name,
        role: 'events',
        spec: role('events', { ...spec, ...events, env: { ...spec.env, ...events.env }, visibility: 'cluster-local' }),
      },
    ];
  });
}

/** The Knative Service of the values named `name` (knativeServicesOf), or undefined. */
export const knativeServiceOf = (values, name) => knativeServicesOf(values).find((service) => service.name === name);
