import { describe, expect, it } from 'vitest';
import {
  audienceOf,
  loadEventPolicies,
  oidcServiceAccount,
  subjectOf,
} from '../../../scripts/router/event-policies.js';
import { kustomize } from './lib/kustomize.js';
import type { K8sObject } from './lib/manifests.js';

// Sender identity in the cluster (docs/deploy.md "Events only from the eventing plane"): each workload (each Knative
// Service: a split function's app Service and its `<name>-events` receiver apart) is its own service account, presents a token for the Broker only if it posts there, and each receiver checks tokens for the
// audience its Triggers and PingSources name, from exactly the senders the EventPolicies of the oidc overlay allow.
// Least privilege: no Role, no API token but the one a receiver needs to read the JWKS, no token at all for api-keys.
const NS = 'kiot';
const base = kustomize('knative');
const oidc = kustomize('knative/overlays/oidc');
const policies = await loadEventPolicies('knative', NS);

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { configMapKeyRef?: { key: string } };
}
interface Workload {
  doc: K8sObject;
  name: string;
  pod: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  env: EnvVar[];
  /** What senders address: the Knative Service itself, or the Kubernetes Service that selects the pods. */
  target: { apiVersion: string; kind: string; name: string };
}

const workloads: Workload[] = base.flatMap((doc): Workload[] => {
  const knative = doc.kind === 'Service' && doc.apiVersion.startsWith('serving.knative.dev/');
  if (!knative && doc.kind !== 'StatefulSet' && doc.kind !== 'Deployment') return [];
  const pod = doc.spec.template.spec;
  const env = pod.containers.flatMap((c: { env?: EnvVar[] }) => c.env ?? []) as EnvVar[];
  const fronting = base.find(
    (s) =>
      s.kind === 'Service' &&
      s.apiVersion === 'v1' &&
      s.spec?.selector?.['app.kubernetes.io/name'] === doc.spec.template.metadata?.labels?.['app.kubernetes.io/name'],
  );
  const target = knative
    ? { apiVersion: doc.apiVersion, kind: 'Service', name: doc.metadata.name }
    : { apiVersion: 'v1', kind: 'Service', name: fronting?.metadata.name ?? '(none)' };
  return [{ doc, name: doc.metadata.name, pod, env, target }];
});
const envOf = (w: Workload, name: string) => w.env.find((e) => e.name === name);
/** The projected token source mounted at `file`, if any. */
function tokenAt(w: Workload, file: string | undefined) {
  if (!file) return undefined;
  const mounts = w.pod.containers.flatMap((c: { volumeMounts?: unknown[] }) => c.volumeMounts ?? []) as {
    name: string;
    mountPath: string;
    readOnly?: boolean;
  }[];
  for (const mount of mounts) {
    if (!file.startsWith(`${mount.mountPath}/`)) continue;
    expect(mount.readOnly).toBe(true);
    const volume = (w.pod.volumes ?? []).find((v: { name: string }) => v.name === mount.name);
    const path = file.slice(mount.mountPath.length + 1);
    for (const source of volume?.projected?.sources ?? []) {
      if (source.serviceAccountToken?.path === path) return { token: source.serviceAccountToken };
      if (source.configMap?.items?.some((item: { path: string }) => item.path === path))
        return { configMap: source.configMap };
    }
  }
  return undefined;
}
const producers = workloads.filter(
  (w) =>
    envOf(w, 'K_SINK') !== undefined ||
    base.some((b) => b.kind === 'SinkBinding' && b.spec.subject.name === w.name && b.spec.subject.kind === w.doc.kind),
);
/** Who sends to a target: each Trigger (subscriber, dead-letter sink) and PingSource, with the audience it names. */
const destinations = base.flatMap((doc) => {
  const of = (
    destination: any,
    field: string, // eslint-disable-line @typescript-eslint/no-explicit-any
  ) =>
    destination?.ref ? [{ sender: doc, field, ref: destination.ref, audience: destination.audience as unknown }] : [];
  if (doc.kind === 'Trigger')
    return [...of(doc.spec.subscriber, 'subscriber'), ...of(doc.spec.delivery?.deadLetterSink, 'deadLetterSink')];
  if (doc.kind === 'PingSource') return of(doc.spec.sink, 'sink');
  if (doc.kind === 'Broker') return of(doc.spec.delivery?.deadLetterSink, 'deadLetterSink');
  return [];
});
const receivers = workloads.filter((w) =>
  destinations.some((d) => d.ref.name === w.target.name && d.ref.apiVersion === w.target.apiVersion),
);

describe('workload identity (knative/identity)', () => {
  it('finds every workload: the functions (both Services of each split one), the console, the bridge and the tick gate', () => {
    expect(workloads.map((w) => w.name).sort()).toEqual(
      [
        'api-keys',
        'console',
        'command-dispatch',
        'command-dispatch-events',
        'dead-letters',
        'device-registry',
        'device-registry-events',
        'jobs',
        'jobs-events',
        'mqtt-bridge',
        'report-generation',
        'report-generation-events',
        'telemetry-ingest',
        'telemetry-ingest-events',
        'tick-gate',
      ].sort(),
    );
    // The receivers: each function's cluster-local `<name>-events`, dead-letters, the bridge, the tick gate.
    expect(receivers.map((w) => w.name).sort()).toEqual(
      [
        'command-dispatch-events',
        'dead-letters',
        'device-registry-events',
        'jobs-events',
        'mqtt-bridge',
        'report-generation-events',
        'telemetry-ingest-events',
        'tick-gate',
      ].sort(),
    );
  });

  it('a public app Service receives nothing: no Trigger, PingSource or EventPolicy names it, and it holds no receiver token', () => {
    const publicServices = workloads.filter(
      (w) =>
        w.target.apiVersion.startsWith('serving.knative.dev/') &&
        w.doc.metadata.labels?.['networking.knative.dev/visibility'] !== 'cluster-local',
    );
    expect(publicServices.length).toBe(7);
    for (const w of publicServices) {
      expect(receivers, w.name).not.toContain(w);
      expect(policies.sendersTo({ ...w.target, namespace: NS }), w.name).toEqual([subjectOf(NS, '*')]);
      expect(envOf(w, 'EVENT_OIDC_JWKS_TOKEN_FILE'), w.name).toBeUndefined();
      expect(envOf(w, 'DEAD_LETTER_TOKEN_FILE'), w.name).toBeUndefined();
    }
  });

  it('each workload runs as its own service account kiot-<workload>, with no automatic API token', () => {
    const accounts = base.filter((doc) => doc.kind === 'ServiceAccount');
    expect(accounts.map((a) => a.metadata.name).sort()).toEqual(workloads.map((w) => `kiot-${w.name}`).sort());
    for (const account of accounts) expect(account.automountServiceAccountToken, account.metadata.name).toBe(false);
    for (const w of workloads) {
      expect(w.pod.serviceAccountName, w.name).toBe(`kiot-${w.name}`);
      expect(w.pod.automountServiceAccountToken, w.name).toBe(false);
    }
  });

  it('no Role or binding in the base: a workload may not call the API', () => {
    expect(base.filter((doc) => /Role(Binding)?$/.test(doc.kind))).toEqual([]);
  });

  it('a producer presents a token for the Broker’s audience; the Broker takes events from exactly the producers', () => {
    const broker = audienceOf('eventing.knative.dev/v1', 'Broker', NS, 'default');
    expect(producers.length).toBe(13);
    for (const w of workloads) {
      const file = envOf(w, 'EVENT_TOKEN_FILE')?.value;
      if (!producers.includes(w)) {
        expect(file, `${w.name} posts nothing to the Broker`).toBeUndefined();
        continue;
      }
      const source = tokenAt(w, file);
      expect(source?.token, `${w.name}: ${file}`).toMatchObject({ audience: broker });
      expect(source!.token.expirationSeconds).toBeGreaterThanOrEqual(600);
    }
    const senders = policies.sendersTo({
      apiVersion: 'eventing.knative.dev/v1',
      kind: 'Broker',
      name: 'default',
      namespace: NS,
    });
    expect([...senders].sort()).toEqual(producers.map((w) => subjectOf(NS, `kiot-${w.name}`)).sort());
  });

  it('a workload that posts to dead-letters itself presents a token for that audience, and dead-letters accepts it', () => {
    const audience = audienceOf('serving.knative.dev/v1', 'Service', NS, 'dead-letters');
    const deadLetters = workloads.find((w) => w.name === 'dead-letters')!;
    const allowed = envOf(deadLetters, 'EVENT_SENDERS')!.value!.split(',');
    // telemetry-ingest's receiver dead-letters the refused items of a batch; its app Service (the same
    // DEAD_LETTER_SINK, which its config requires) receives no batch, so it gets no token and no permission.
    const posters = workloads.filter((w) => envOf(w, 'DEAD_LETTER_TOKEN_FILE'));
    expect(posters.map((w) => w.name).sort()).toEqual(['mqtt-bridge', 'telemetry-ingest-events']);
    expect(allowed).not.toContain(subjectOf(NS, 'kiot-telemetry-ingest'));
    for (const w of posters) {
      expect(tokenAt(w, envOf(w, 'DEAD_LETTER_TOKEN_FILE')?.value)?.token, w.name).toMatchObject({ audience });
      expect(allowed).toContain(subjectOf(NS, `kiot-${w.name}`));
    }
  });

  it('every Trigger, PingSource and the Broker name the audience of what they send to (a Knative Service publishes none)', () => {
    expect(destinations.length).toBeGreaterThan(40);
    for (const d of destinations)
      expect(d.audience, `${d.sender.kind} ${d.sender.metadata.name} ${d.field}`).toBe(
        audienceOf(d.ref.apiVersion, d.ref.kind, NS, d.ref.name),
      );
  });

  it('each receiver checks tokens for that audience, from exactly the senders its EventPolicies allow, each of its Triggers and PingSources among them', () => {
    for (const w of receivers) {
      const audience = audienceOf(w.target.apiVersion, w.target.kind, NS, w.target.name);
      expect(envOf(w, 'EVENT_AUDIENCE')?.value, w.name).toBe(audience);
      const senders = envOf(w, 'EVENT_SENDERS')!.value!.split(',');
      expect([...senders].sort(), w.name).toEqual([...policies.sendersTo({ ...w.target, namespace: NS })].sort());
      expect(senders.some((s) => s.endsWith('*'))).toBe(false);
      for (const d of destinations.filter((d) => d.ref.name === w.target.name && d.sender.kind !== 'Broker'))
        expect(senders, `${d.sender.metadata.name} → ${w.name}`).toContain(
          subjectOf(NS, oidcServiceAccount(d.sender.apiVersion, d.sender.kind, d.sender.metadata.name)),
        );
      // Checking is switched by the ConfigMap (off in the base, oidc in the overlay); the JWKS is read with the
      // pod's API-server token (the API server's default audience) and the cluster CA.
      expect(envOf(w, 'EVENT_AUTH')?.valueFrom?.configMapKeyRef?.key).toBe('EVENT_AUTH');
      const apiToken = tokenAt(w, envOf(w, 'EVENT_OIDC_JWKS_TOKEN_FILE')?.value)?.token;
      expect(apiToken, w.name).toBeDefined();
      expect(apiToken.audience).toBeUndefined();
      expect(tokenAt(w, envOf(w, 'EVENT_OIDC_CA_FILE')?.value)?.configMap?.name).toBe('kube-root-ca.crt');
    }
  });

  it('a workload that receives no events has no API-server token and no receiver settings; api-keys and the console have no token at all', () => {
    for (const w of workloads.filter((w) => !receivers.includes(w))) {
      expect(envOf(w, 'EVENT_AUDIENCE'), w.name).toBeUndefined();
      expect(envOf(w, 'EVENT_OIDC_JWKS_TOKEN_FILE'), w.name).toBeUndefined();
    }
    for (const name of ['api-keys', 'console'])
      expect(workloads.find((w) => w.name === name)!.pod.volumes, name).toBeUndefined();
  });
});

describe('knative/overlays/oidc', () => {
  const configOf = (docs: K8sObject[]) =>
    docs.find((d) => d.kind === 'ConfigMap' && d.metadata.name === 'kiot-config')!;

  it('has every object of the base, with checking on (EVENT_AUTH oidc; the base says off)', () => {
    const ids = new Set(oidc.map((d) => `${d.kind}/${d.metadata.name}`));
    expect(base.map((d) => `${d.kind}/${d.metadata.name}`).filter((id) => !ids.has(id))).toEqual([]);
    expect((configOf(base).data as Record<string, string>).EVENT_AUTH).toBe('off');
    expect((configOf(oidc).data as Record<string, string>).EVENT_AUTH).toBe('oidc');
  });

  it('lets exactly the receivers read the cluster’s JWKS (the issuer discovery role), and grants nothing else', () => {
    const rbac = oidc.filter((doc) => /Role(Binding)?$/.test(doc.kind));
    expect(rbac.map((doc) => doc.kind)).toEqual(['ClusterRoleBinding']);
    const binding = rbac[0]!;
    expect(binding.roleRef).toEqual({
      apiGroup: 'rbac.authorization.k8s.io',
      kind: 'ClusterRole',
      name: 'system:service-account-issuer-discovery',
    });
    expect((binding.subjects as { name: string }[]).map((s) => s.name).sort()).toEqual(
      receivers.map((w) => `kiot-${w.name}`).sort(),
    );
  });

  it('has an EventPolicy for every receiver and for the Broker', () => {
    const targets = oidc
      .filter((doc) => doc.kind === 'EventPolicy')
      .flatMap((doc) => doc.spec.to.map((to: { ref: { name: string } }) => to.ref.name));
    expect(targets.sort()).toEqual(['default', ...receivers.map((w) => w.target.name)].sort());
  });
});
