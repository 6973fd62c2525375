import { randomBytes } from 'node:crypto';
import { type K8sObject, loadManifests } from '../unit/knative/lib/manifests.js';
import { MONGODB_URL, MQTT_URL, REDIS_URL, uniqueName } from './services.js';

// The workloads of knative/ (the Knative Services and the bridge's StatefulSet) as a cluster would start
// them: command, environment (ConfigMap values resolved, Secret keys and cluster-only addresses replaced
// by the test services), port, readiness probe, security context and termination grace period.

export interface SecurityContext {
  runAsUser?: number;
  runAsGroup?: number;
  runAsNonRoot?: boolean;
  readOnlyRootFilesystem?: boolean;
  allowPrivilegeEscalation?: boolean;
  capabilities?: { drop?: string[]; add?: string[] };
}

export interface Workload {
  /** metadata.name of the Service or StatefulSet. */
  name: string;
  kind: 'Service' | 'StatefulSet' | 'Deployment';
  /** The deployable: the command runs dist/<bundle>.js. */
  bundle: string;
  command: string[];
  env: Record<string, string>;
  /** The container port the probe and the traffic use. */
  port: number;
  probe: { kind: 'tcp' } | { kind: 'http'; path: string };
  /** The pod's security context with the container's on top (Kubernetes' precedence). */
  securityContext: SecurityContext;
  /** What Kubernetes waits after SIGTERM before SIGKILL: the pod's terminationGracePeriodSeconds, which
   * Knative sets to the revision's timeoutSeconds (serving pkg/reconciler/revision/resources/deploy.go). */
  graceSeconds: number;
}

/** The values only a cluster has (Secrets, DNS names, the Broker), for a run against the test services. */
export function testValues(sink: string, db: string): (name: string, key: string) => string | undefined {
  const secrets: Record<string, string> = {
    MONGODB_URL,
    TICK_GATE_MONGODB_URL: MONGODB_URL,
    REDIS_URL,
    API_KEYS: '[]',
    PROVISIONING_REPLY_KEY: randomBytes(32).toString('base64url'),
  };
  const overrides: Record<string, string> = { MQTT_URL, K_SINK: sink, DEAD_LETTER_SINK: sink, MONGODB_DB: db };
  return (name, key) => {
    if (key in secrets) return secrets[key];
    if (/MQTT_(USERNAME|PASSWORD)$/.test(key)) return 'kiot';
    return overrides[name];
  };
}

/**
 * Every workload of the base manifests. `local(name, key)` replaces a variable (key: the Secret or
 * ConfigMap key it refers to, else its name); the bridge gets the SinkBinding's K_SINK, a share group of
 * its own (never the shared test broker's real group) and sessions that expire soon after the test.
 */
export function manifestWorkloads(local: (name: string, key: string) => string | undefined): Workload[] {
  const manifests = loadManifests();
  const configMap = (
    manifests.find(({ doc }) => doc.kind === 'ConfigMap')!.doc as K8sObject & { data: Record<string, string> }
  ).data;
  return manifests.flatMap(({ doc }): Workload[] => {
    const knative = doc.kind === 'Service' && doc.apiVersion.startsWith('serving.knative.dev/');
    if (!knative && doc.kind !== 'StatefulSet' && doc.kind !== 'Deployment') return [];
    const pod = doc.spec.template.spec;
    const container = pod.containers[0];
    const bundle = /^dist\/([a-z-]+)\.js$/.exec(container.command.at(-1))![1]!;
    const env: Record<string, string> = {};
    for (const entry of container.env ?? []) {
      const ref = entry.valueFrom?.configMapKeyRef ?? entry.valueFrom?.secretKeyRef;
      const value = local(entry.name, ref?.key ?? entry.name);
      if (value !== undefined) env[entry.name] = value;
      else if (entry.value !== undefined) env[entry.name] = entry.value;
      else if (entry.valueFrom?.configMapKeyRef) env[entry.name] = configMap[entry.valueFrom.configMapKeyRef.key]!;
      else if (entry.valueFrom?.fieldRef?.fieldPath === 'metadata.name')
        env[entry.name] = uniqueName(`${doc.metadata.name}-0`).slice(0, 50);
    }
    // Knative gives a Service's container PORT, its containerPort.
    if (knative) env.PORT = String(container.ports?.[0]?.containerPort ?? 8080);
    if (!knative) env.K_SINK = local('K_SINK', 'K_SINK') ?? env.K_SINK!;
    if (doc.kind === 'StatefulSet')
      Object.assign(env, { BRIDGE_SHARE_GROUP: uniqueName('ks'), BRIDGE_SESSION_EXPIRY_S: '60' });
    const ports: { name?: string; containerPort: number }[] = container.ports ?? [];
    const port = ports[0]?.containerPort ?? 8080;
    const probe = container.readinessProbe ?? {};
    const probePort = probe.httpGet?.port ?? probe.tcpSocket?.port;
    const namedPort =
      typeof probePort === 'string' ? ports.find((p) => p.name === probePort)?.containerPort : probePort;
    return [
      {
        name: doc.metadata.name,
        kind: knative ? 'Service' : (doc.kind as 'StatefulSet' | 'Deployment'),
        bundle,
        command: container.command,
        env,
        port: namedPort ?? port,
        probe: probe.httpGet ? { kind: 'http', path: probe.httpGet.path } : { kind: 'tcp' },
        securityContext: { ...pod.securityContext, ...container.securityContext },
        graceSeconds: knative ? (pod.timeoutSeconds ?? 300) : (pod.terminationGracePeriodSeconds ?? 30),
      },
    ];
  });
}
