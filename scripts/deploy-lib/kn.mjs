// The `kn service create` command of each Knative Service (a function, or each half of a split one), from
// knative/deploy-values.json (the values the
// rendered knative/services/<name>.yaml carries as well). `--filename` gives kn the rendered Service for what
// no kn flag expresses (read-only root filesystem, run-as group, seccomp, service links); every flag after it
// states the same values again, explicitly, so the command reads as the deployment it makes.
import { eventPlaneOf, loadEventPolicies, withEventPlane, workloadsOf } from './event-plane.mjs';
import { autoscalingAnnotations, serviceLabels } from './render.mjs';
import { keyRef, knativeServiceOf, nodeCommandOf } from './values.mjs';

const ANNOTATION_FLAGS = new Set([
  'autoscaling.knative.dev/min-scale',
  'autoscaling.knative.dev/max-scale',
  'autoscaling.knative.dev/target',
  'autoscaling.knative.dev/target-utilization-percentage',
  'autoscaling.knative.dev/window',
]);

const quantities = (map) =>
  Object.entries(map)
    .map(([name, value]) => `${name}=${value}`)
    .join(',');

/** argv of `kn service create <name> … --force` (without the leading `kn`). */
export function knServiceCreateArgs(values, name, image, policies = loadEventPolicies()) {
  const plane = eventPlaneOf(
    values,
    policies,
    workloadsOf(values).find((workload) => workload.workload === name),
  );
  // The projected token volume has no kn flag: it comes from --filename; the service account and the env do.
  const service = knativeServiceOf(values, name);
  const spec = withEventPlane(service.spec, plane);
  const args = [
    'service',
    'create',
    name,
    '--namespace',
    values.namespace,
    '--force',
    '--filename',
    `knative/services/${name}.yaml`,
  ];
  args.push(
    '--image',
    image,
    '--cmd',
    'node',
    // `--arg=…`: a value that starts with `--` (the heap flags) must not read as a flag of kn's.
    ...nodeCommandOf(spec, service.function)
      .slice(1)
      .map((arg) => `--arg=${arg}`),
    '--port',
    `http1:${values.port}`,
  );
  for (const [envName, value] of Object.entries(spec.env ?? {})) args.push('--env', `${envName}=${value}`);
  for (const entry of spec.fromConfigMap ?? []) {
    const { name: envName, key } = keyRef(entry);
    args.push('--env-value-from', `${envName}=config-map:${values.configMap.name}:${key}`);
  }
  for (const entry of spec.fromSecret ?? []) {
    const { name: envName, key } = keyRef(entry);
    args.push('--env-value-from', `${envName}=secret:${values.secret.name}:${key}`);
  }
  args.push(
    '--scale-min',
    String(spec.scale.min),
    '--scale-max',
    String(spec.scale.max),
    '--scale-target',
    String(spec.scale.target),
  );
  if (spec.scale.utilization !== undefined) args.push('--scale-utilization', String(spec.scale.utilization));
  if (spec.scale.window !== undefined) args.push('--scale-window', spec.scale.window);
  // No kn flag for these: revision annotations.
  for (const [key, value] of Object.entries(autoscalingAnnotations(spec.scale))) {
    if (!ANNOTATION_FLAGS.has(key)) args.push('--annotation-revision', `${key}=${value}`);
  }
  args.push('--concurrency-limit', String(spec.containerConcurrency), '--timeout', String(spec.timeoutSeconds));
  args.push('--request', quantities(spec.resources.requests), '--limit', quantities(spec.resources.limits));
  args.push('--probe-readiness', `tcp::${values.port}`);
  args.push('--security-context', 'strict', '--user', String(values.runAsUser));
  args.push('--service-account', plane.serviceAccountName);
  for (const [key, value] of Object.entries(serviceLabels(service))) args.push('--label', `${key}=${value}`);
  if (spec.visibility === 'cluster-local') args.push('--cluster-local');
  return args;
}
