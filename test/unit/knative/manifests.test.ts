import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseIsoDuration, toSeconds } from 'iso8601-duration';
import parseGoDuration from 'parse-duration';
import { describe, expect, it } from 'vitest';
import { readManifests } from '../../../scripts/router/load-manifests.js';
import { identity, kustomize, reachableFiles } from './lib/kustomize.js';
import {
  isKustomization,
  type K8sObject,
  KNATIVE_DIR,
  type Located,
  loadManifests,
  named,
  parseDocuments,
  ROOT,
  triggerType,
  yamlFiles,
} from './lib/manifests.js';

// Every manifest under knative/: YAML, kustomize, and kiot's own deployment rules (scale to zero, probes,
// security, delivery). What Knative itself admits is checked by its own code in admission.test.ts.
const manifests = loadManifests();
const of = (kind: string, group?: string) =>
  manifests.filter(({ doc }) => doc.kind === kind && (group === undefined || doc.apiVersion.startsWith(`${group}/`)));
const A = 'autoscaling.knative.dev/';
const isoSeconds = (text: string) => toSeconds(parseIsoDuration(text));

describe('knative/ manifests', () => {
  it('parse as YAML, every file and document', () => {
    for (const file of yamlFiles(KNATIVE_DIR))
      expect(() => parseDocuments(readFileSync(file, 'utf8'), file)).not.toThrow();
    expect(manifests.length).toBeGreaterThan(5);
  });

  it('name a namespace and never collide', () => {
    const seen = new Map<string, string>();
    for (const { file, doc } of manifests) {
      if (doc.kind !== 'Namespace') expect(doc.metadata.namespace, `${file} ${named(doc)}`).toBe('kiot');
      expect(seen.get(identity(doc)), `${identity(doc)} in ${file}`).toBeUndefined();
      seen.set(identity(doc), file);
    }
  });

  it('the local router accepts every Broker and Trigger (overlays included)', async () => {
    const { brokers, triggers } = await readManifests(KNATIVE_DIR);
    expect(brokers.length).toBeGreaterThanOrEqual(1);
    expect(triggers.length).toBe(of('Trigger', 'eventing.knative.dev').length);
  });
});

/** The functions that receive events, each split into its app Service and its `<name>-events` receiver. */
const SPLIT = ['command-dispatch', 'device-registry', 'jobs', 'report-generation', 'telemetry-ingest'];
const visibility = (doc: K8sObject): string | undefined => doc.metadata.labels?.['networking.knative.dev/visibility'];
const roleOf = (doc: K8sObject): string | undefined =>
  (doc.spec.template.spec.containers[0].env as { name: string; value?: string }[]).find(
    (e) => e.name === 'FUNCTION_ROLE',
  )?.value;

describe('Knative Services', () => {
  const services = of('Service', 'serving.knative.dev');
  const byName = new Map(services.map((s) => [s.doc.metadata.name, s]));

  it('one per function folder with an entry point, plus dead-letters', () => {
    const functions = readFileSync(join(ROOT, 'knative', 'deploy-values.json'), 'utf8');
    for (const name of JSON.parse(functions).services ? Object.keys(JSON.parse(functions).services) : [])
      expect(byName.has(name), name).toBe(true);
    for (const name of ['device-registry', 'telemetry-ingest', 'command-dispatch', 'report-generation', 'dead-letters'])
      expect(byName.has(name), name).toBe(true);
  });

  it.each(services.map((s) => [s.doc.metadata.name, s] as const))(
    '%s: scales to zero with a target under a hard concurrency limit, a max and a scale-down delay',
    (_name, { doc }) => {
      const annotations: Record<string, string> = doc.spec.template.metadata.annotations;
      expect(annotations[`${A}min-scale`]).toBe('0');
      expect(Number(annotations[`${A}target`])).toBeGreaterThan(0);
      expect(Number(annotations[`${A}max-scale`])).toBeGreaterThan(0);
      expect(parseGoDuration(annotations[`${A}scale-down-delay`] ?? '') ?? 0).toBeGreaterThan(0);
      expect(doc.spec.template.spec.containerConcurrency).toBeGreaterThan(0);
      // Knative admits a soft concurrency target above the hard limit, but the limit would win: keep the target
      // below it. (An rps target is requests per second, not comparable with the concurrency limit.)
      if ((annotations[`${A}metric`] ?? 'concurrency') === 'concurrency')
        expect(Number(annotations[`${A}target`])).toBeLessThanOrEqual(doc.spec.template.spec.containerConcurrency);
      // Only the canonical kebab-case names (Knative also reads the old camelCase aliases).
      for (const key of Object.keys(annotations).filter((k) => k.startsWith(A))) expect(key).toMatch(/^[a-z0-9./-]+$/);
    },
  );

  it.each(services.map((s) => [s.doc.metadata.name, s] as const))(
    '%s: resources, production env from a ConfigMap and a Secret (none for the console), TCP readiness, non-root read-only container, node dist/<function>.js',
    (name, { doc }) => {
      const [container, ...others] = doc.spec.template.spec.containers;
      expect(others).toEqual([]);
      // The function it runs: its own name, or the function a `<name>-events` Service receives events for.
      const fn = doc.metadata.labels?.['app.kubernetes.io/name'];
      expect([fn, `${fn}-events`]).toContain(name);
      expect(container.command).toEqual(['node', ...heapFlags(container), `dist/${fn}.js`]);
      for (const kind of ['requests', 'limits'])
        for (const resource of ['cpu', 'memory'])
          expect(container.resources?.[kind]?.[resource], `${kind}.${resource}`).toBeTruthy();
      expect(toBytes(container.resources.requests.memory)).toBeLessThanOrEqual(
        toBytes(container.resources.limits.memory),
      );
      expect(container.env).toContainEqual({ name: 'NODE_ENV', value: 'production' });
      const refs = [
        ...(container.env ?? []).map((e: { valueFrom?: object }) => e.valueFrom ?? {}),
        ...(container.envFrom ?? []),
      ];
      expect(
        refs.some((r: { configMapKeyRef?: object; configMapRef?: object }) => r.configMapKeyRef || r.configMapRef),
      ).toBe(true);
      // The console holds no credential: the API key comes from the browser and goes on to the functions.
      expect(refs.some((r: { secretKeyRef?: object; secretRef?: object }) => r.secretKeyRef || r.secretRef)).toBe(
        name !== 'console',
      );
      expect(container.readinessProbe?.tcpSocket).toBeDefined();
      expect(container.readinessProbe?.httpGet).toBeUndefined();
      expect(container.securityContext).toMatchObject({
        runAsNonRoot: true,
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ['ALL'] },
      });
      expect(container.securityContext.runAsUser).toBeGreaterThan(0);
    },
  );

  it('telemetry-ingest is limited to 256Mi', () => {
    expect(byName.get('telemetry-ingest')?.doc.spec.template.spec.containers[0].resources.limits.memory).toBe('256Mi');
  });

  it('dead-letters is reachable only inside the cluster', () => {
    expect(byName.get('dead-letters')?.doc.metadata.labels?.['networking.knative.dev/visibility']).toBe(
      'cluster-local',
    );
  });

  it.each(SPLIT)(
    '%s is split by audience: a public app Service (FUNCTION_ROLE=app) and a cluster-local %s-events (FUNCTION_ROLE=events), one image',
    (name) => {
      const app = byName.get(name)!.doc;
      const events = byName.get(`${name}-events`)!.doc;
      expect(visibility(app)).toBeUndefined();
      expect(visibility(events)).toBe('cluster-local');
      expect(roleOf(app)).toBe('app');
      expect(roleOf(events)).toBe('events');
      const [a, e] = [app, events].map((doc) => doc.spec.template.spec.containers[0]);
      expect(e.image).toBe(a.image);
      expect(e.command).toEqual(a.command);
      // The same settings but for the role and what only a receiver holds (its audience, senders, JWKS access).
      const own = new Set(['FUNCTION_ROLE', 'EVENT_AUTH', 'EVENT_AUDIENCE', 'EVENT_SENDERS', 'EVENT_OIDC_ISSUER']);
      for (const n of [
        'EVENT_OIDC_JWKS_URL',
        'EVENT_OIDC_JWKS_TOKEN_FILE',
        'EVENT_OIDC_CA_FILE',
        'DEAD_LETTER_TOKEN_FILE',
      ])
        own.add(n);
      const shared = (c: { env: { name: string }[] }) => c.env.filter((v) => !own.has(v.name));
      expect(shared(e)).toEqual(shared(a));
      expect(e.resources).toEqual(a.resources);
    },
  );

  it('every public Knative Service serves the app API only: FUNCTION_ROLE=app, or (api-keys, the console) takes no events at all', () => {
    const publicServices = services.filter(({ doc }) => visibility(doc) !== 'cluster-local').map(({ doc }) => doc);
    expect(publicServices.map((doc) => doc.metadata.name).sort()).toEqual([...SPLIT, 'api-keys', 'console'].sort());
    for (const doc of publicServices.filter((d) => SPLIT.includes(d.metadata.name)))
      expect(roleOf(doc), doc.metadata.name).toBe('app');
    // api-keys consumes no event: its function app is built for the app role, whatever the environment says.
    expect(readFileSync(join(ROOT, 'functions/api-keys/app.ts'), 'utf8')).toMatch(/\brole: 'app',/);
    // The console is no function app (a page and a proxy to the app Services): it has no CloudEvent entry.
    expect(readFileSync(join(ROOT, 'console/server/index.ts'), 'utf8')).not.toMatch(/createFunctionApp|cloudEvent/);
  });

  it('the ConfigMap and the Secret template have every key a workload reads; the template holds no value', () => {
    const configMaps = new Map(of('ConfigMap').map(({ doc }) => [doc.metadata.name, doc]));
    const template = parseDocuments(
      readFileSync(join(ROOT, 'knative/config/secret.template.yaml'), 'utf8'),
    )[0] as K8sObject & { stringData: Record<string, string> };
    expect(Object.values(template.stringData).every((value) => value === '')).toBe(true);
    const kustomized = reachableFiles(KNATIVE_DIR).files;
    expect(kustomized.has('knative/config/secret.template.yaml')).toBe(false);
    for (const { file, doc } of manifests) {
      for (const container of podContainers(doc)) {
        for (const env of container.env ?? []) {
          const cm = env.valueFrom?.configMapKeyRef;
          const secret = env.valueFrom?.secretKeyRef;
          if (cm)
            expect(
              (configMaps.get(cm.name) as { data?: Record<string, string> } | undefined)?.data?.[cm.key],
              `${file} ${env.name}`,
            ).toBeDefined();
          if (secret) {
            expect(secret.name).toBe(template.metadata.name);
            expect(Object.keys(template.stringData), `${file} ${env.name}`).toContain(secret.key);
          }
        }
      }
    }
  });
});

describe('eventing', () => {
  const services = new Set(
    manifests.filter(({ doc }) => doc.kind === 'Service').map(({ doc }) => `${doc.apiVersion}/${doc.metadata.name}`),
  );
  const brokers = new Set(of('Broker', 'eventing.knative.dev').map(({ doc }) => doc.metadata.name));

  it('a Broker with a configurable class and a dead-letter sink', () => {
    const broker = of('Broker', 'eventing.knative.dev');
    expect(broker.length).toBe(1);
    expect(broker[0]!.doc.metadata.annotations?.['eventing.knative.dev/broker.class']).toBeTruthy();
    expect(broker[0]!.doc.spec.delivery.deadLetterSink).toBeDefined();
  });

  it.each(of('Trigger', 'eventing.knative.dev').map((t) => [t.doc.metadata.name, t] as const))(
    'Trigger %s: filters on type, retries with exponential backoff, dead-letters to an existing sink',
    (_name, { doc }) => {
      const spec = doc.spec;
      expect(brokers.has(spec.broker ?? 'default')).toBe(true);
      expect(Array.isArray(spec.filters)).toBe(true);
      expect(triggerType(doc), 'an `exact: {type}` filter').toMatch(/^[a-z]/);
      expect(spec.delivery?.retry).toBeGreaterThanOrEqual(1);
      expect(spec.delivery?.backoffPolicy).toBe('exponential');
      expect(isoSeconds(spec.delivery?.backoffDelay ?? 'PT0S')).toBeGreaterThan(0);
      const sink = spec.delivery?.deadLetterSink;
      expect(sink?.ref ?? sink?.uri).toBeDefined();
      if (sink.ref)
        expect(services.has(`${sink.ref.apiVersion}/${sink.ref.name}`), `${sink.ref.name} exists`).toBe(true);
      const subscriber = spec.subscriber.ref;
      if (subscriber)
        expect(
          services.has(`${subscriber.apiVersion}/${subscriber.name}`),
          `subscriber ${subscriber.name} exists`,
        ).toBe(true);
    },
  );

  it.each(of('Trigger', 'eventing.knative.dev').map((t) => [t.doc.metadata.name, t] as const))(
    'Trigger %s delivers only inside the cluster: to a cluster-local Knative Service with FUNCTION_ROLE=events, or a ClusterIP Service',
    (_name, { doc }) => {
      const ref = doc.spec.subscriber.ref;
      expect(ref, 'a subscriber ref, never a URI').toBeDefined();
      const target = manifests.find(
        (m) => m.doc.kind === 'Service' && m.doc.apiVersion === ref.apiVersion && m.doc.metadata.name === ref.name,
      )!.doc;
      if (ref.apiVersion.startsWith('serving.knative.dev/')) {
        expect(visibility(target)).toBe('cluster-local');
        expect(roleOf(target)).toBe('events');
        expect(ref.name).toMatch(/-events$/);
      } else {
        expect(ref.apiVersion).toBe('v1');
        expect(target.spec.type ?? 'ClusterIP').toBe('ClusterIP');
      }
    },
  );
});

describe('the bridge', () => {
  const [statefulSet] = of('StatefulSet');
  const container = statefulSet?.doc.spec.template.spec.containers[0];
  const env = new Map<string, { value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }>(
    (container?.env ?? []).map((e: { name: string }) => [e.name, e]),
  );

  it('is a StatefulSet of at least two replicas in one share group, each with its pod name as MQTT client id', () => {
    expect(statefulSet!.doc.metadata.name).toBe('mqtt-bridge');
    // Its HorizontalPodAutoscaler sets the replicas (never the manifest, which an apply would reset them to).
    expect(statefulSet!.doc.spec.replicas).toBeUndefined();
    const [hpa] = of('HorizontalPodAutoscaler');
    expect(hpa!.doc.spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'mqtt-bridge' });
    expect(hpa!.doc.spec.minReplicas).toBeGreaterThanOrEqual(2);
    expect(hpa!.doc.spec.maxReplicas).toBeGreaterThan(hpa!.doc.spec.minReplicas);
    // Down one member at a time, slower than a drain (preStop, then up to the grace period), so none strands its queue.
    const down = hpa!.doc.spec.behavior.scaleDown;
    expect(down.policies).toEqual([expect.objectContaining({ type: 'Pods', value: 1 })]);
    expect(down.policies[0].periodSeconds).toBeGreaterThan(
      statefulSet!.doc.spec.template.spec.terminationGracePeriodSeconds,
    );
    expect(container.command).toEqual(['node', ...heapFlags(container), 'dist/bridge.js']);
    expect(env.get('BRIDGE_CLIENT_ID')?.valueFrom?.fieldRef?.fieldPath).toBe('metadata.name');
    expect(env.get('BRIDGE_SHARE_GROUP')?.value).toMatch(/^[A-Za-z0-9._-]+$/);
    expect(container.securityContext).toMatchObject({
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
  });

  it('drains before its session is retired: preStop, then a grace period longer than the drain timeout', () => {
    const grace = statefulSet!.doc.spec.template.spec.terminationGracePeriodSeconds;
    const preStop = container.lifecycle?.preStop;
    expect(preStop).toBeDefined();
    const preStopMs = Number(/setTimeout\([^,]+,\s*(\d+)\)/.exec(preStop.exec?.command?.join(' ') ?? '')?.[1] ?? 0);
    const drainMs = Number(env.get('DRAIN_TIMEOUT_MS')?.value ?? 20_000);
    expect(grace * 1000).toBeGreaterThan(preStopMs + drainMs + 5_000);
    expect(statefulSet!.doc.spec.podManagementPolicy ?? 'OrderedReady').toBe('OrderedReady');
  });

  it('gets K_SINK from a SinkBinding on the StatefulSet to the Broker, and the Trigger reaches it through Service mqtt-bridge', () => {
    const [binding] = of('SinkBinding', 'sources.knative.dev');
    expect(binding!.doc.spec.subject).toMatchObject({
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      name: 'mqtt-bridge',
    });
    expect(binding!.doc.spec.sink.ref).toMatchObject({
      apiVersion: 'eventing.knative.dev/v1',
      kind: 'Broker',
      name: 'default',
    });
    const service = of('Service').find(
      ({ doc }) => doc.apiVersion === 'v1' && doc.metadata.name === 'mqtt-bridge',
    )!.doc;
    const podLabels = statefulSet!.doc.spec.template.metadata.labels;
    for (const [key, value] of Object.entries(service.spec.selector)) expect(podLabels[key]).toBe(value);
    const ports = container.ports.flatMap((p: { name: string; containerPort: number }) => [p.name, p.containerPort]);
    expect(ports).toContain(service.spec.ports[0].targetPort);
    const publish = of('Trigger').find(({ doc }) => triggerType(doc) === 'io.kiot.mqtt.publish');
    expect(publish?.doc.spec.subscriber.ref).toMatchObject({ apiVersion: 'v1', kind: 'Service', name: 'mqtt-bridge' });
    // A ref to a plain Service is its port 80 (Knative's URI resolver): the Service must listen there.
    expect(service.spec.ports.some((p: { port: number }) => p.port === 80)).toBe(true);
  });
});

describe('kustomize', () => {
  it('every resource a kustomization lists exists, and the root reaches every manifest of the base', () => {
    const { files, missing } = reachableFiles(KNATIVE_DIR);
    expect(missing).toEqual([]);
    const manifestFiles = new Set(manifests.map((m: Located) => m.file));
    manifestFiles.delete('knative/config/secret.template.yaml');
    expect([...manifestFiles].filter((file) => !files.has(file))).toEqual([]);
  });

  it('no Knative Service manifest lies outside knative/services/ (rendered from deploy-values.json), applied or not', () => {
    const stray = loadManifests({ includeOverlays: true })
      .filter(
        ({ file, doc }) =>
          doc.kind === 'Service' &&
          doc.apiVersion?.startsWith('serving.knative.dev/') &&
          !file.startsWith('knative/services/'),
      )
      .map(({ file, doc }) => `${file}: ${named(doc)}`);
    expect(stray).toEqual([]);
    expect(of('Service', 'serving.knative.dev').length).toBeGreaterThan(0);
  });

  it('the generated manifests are in sync with knative/deploy-values.json', () => {
    const result = spawnSync('node', ['scripts/deploy-lib/render.mjs', '--check'], { cwd: ROOT, encoding: 'utf8' });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });

  it.each([
    'knative',
    'knative/overlays/dev',
    'knative/overlays/prod',
    'knative/overlays/oidc',
    'knative/overlays/prod-oidc',
  ])('%s builds; it has every object of the base and the same Knative Services', (dir) => {
    const base = kustomize('knative');
    const built = kustomize(dir);
    const ids = new Set(built.map(identity));
    expect(base.map(identity).filter((id) => !ids.has(id))).toEqual([]);
    const ksvc = (docs: K8sObject[]) =>
      docs
        .filter((doc) => doc.apiVersion.startsWith('serving.knative.dev/'))
        .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
    expect(ksvc(built)).toEqual(ksvc(base));
    expect(ksvc(built).length).toBe(of('Service', 'serving.knative.dev').length);
  });

  it.each(['knative/overlays/prod', 'knative/overlays/prod-oidc'])(
    '%s uses a durable (Kafka) Broker with its config',
    (dir) => {
      const broker = kustomize(dir).find((doc) => doc.kind === 'Broker')!;
      expect(broker.metadata.annotations?.['eventing.knative.dev/broker.class']).toBe('Kafka');
      expect(broker.spec.config).toMatchObject({ kind: 'ConfigMap', name: 'kafka-broker-config' });
    },
  );

  it('prod-oidc is exactly prod plus the oidc overlay’s additions: its EventPolicies, issuer discovery and EVENT_AUTH oidc', () => {
    const byId = (docs: K8sObject[]) => new Map(docs.map((doc) => [identity(doc), doc]));
    const base = byId(kustomize('knative'));
    const prod = byId(kustomize('knative/overlays/prod'));
    const oidc = byId(kustomize('knative/overlays/oidc'));
    const prodOidc = byId(kustomize('knative/overlays/prod-oidc'));
    const added = [...oidc.keys()].filter((id) => !base.has(id));
    expect(added.length).toBeGreaterThan(5);
    expect([...prodOidc.keys()].sort()).toEqual([...new Set([...prod.keys(), ...added])].sort());
    for (const id of added) expect(prodOidc.get(id), id).toEqual(oidc.get(id));
    const config = [...prodOidc.values()].find(
      (doc) => doc.kind === 'ConfigMap' && doc.metadata.name === 'kiot-config',
    )!;
    const prodConfig = [...prod.values()].find(
      (doc) => doc.kind === 'ConfigMap' && doc.metadata.name === 'kiot-config',
    )!;
    expect(config.data).toEqual({ ...(prodConfig.data as Record<string, string>), EVENT_AUTH: 'oidc' });
    for (const [id, doc] of prodOidc) if (!added.includes(id) && doc !== config) expect(doc, id).toEqual(prod.get(id));
  });

  it('the YAML files under knative/ that are not kustomizations are all manifests', () => {
    for (const file of yamlFiles(KNATIVE_DIR)) {
      for (const doc of parseDocuments(readFileSync(file, 'utf8'), file)) {
        if (isKustomization(doc)) continue;
        expect((doc as K8sObject).apiVersion, file).toBeTruthy();
        expect((doc as K8sObject).kind, file).toBeTruthy();
        expect((doc as K8sObject).metadata?.name, file).toBeTruthy();
      }
    }
  });
});

function podContainers(doc: K8sObject): {
  env?: {
    name: string;
    valueFrom?: { configMapKeyRef?: { name: string; key: string }; secretKeyRef?: { name: string; key: string } };
  }[];
}[] {
  return doc.spec?.template?.spec?.containers ?? [];
}

const toCpus = (quantity: string) => (quantity.endsWith('m') ? Number(quantity.slice(0, -1)) / 1000 : Number(quantity));

function toBytes(quantity: string): number {
  const match = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|K|M|G)?$/.exec(quantity);
  const unit: Record<string, number> = { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, K: 1e3, M: 1e6, G: 1e9 };
  return match ? Number(match[1]) * (match[2] ? unit[match[2]]! : 1) : Number.NaN;
}

/**
 * The heap flags between `node` and the bundle in a container's command (`nodeArgs` in knative/deploy-values.json):
 * the old generation capped at no more than 5/8 of the memory limit (V8 collects before the kernel kills the pod),
 * and an initial old generation of at most half the cap, so that no full collection runs before a start is ready
 * (docs/performance.md, "Cold start"). Command-line flags, not NODE_OPTIONS, which refuses --initial-old-space-size.
 */
function heapFlags(container: { command: string[]; resources: { limits: { memory: string; cpu: string } } }): string[] {
  const flags = container.command.slice(1, -1);
  const mb = (name: string) =>
    Number(new RegExp(`^--${name}=(\\d+)$`).exec(flags.find((f) => f.startsWith(`--${name}=`)) ?? '')?.[1]);
  const max = mb('max-old-space-size');
  const initial = mb('initial-old-space-size');
  // Beside the heap, only --single-threaded-gc, and only in a container of at most one CPU: there V8's parallel
  // collector's helper threads only take turns with the main thread (docs/performance.md, "One CPU, one GC thread").
  const others = flags.filter((f) => !/^--(max|initial)-old-space-size=\d+$/.test(f));
  expect(
    others.filter((f) => f !== '--single-threaded-gc'),
    container.command.join(' '),
  ).toEqual([]);
  if (others.length > 0) expect(toCpus(container.resources.limits.cpu)).toBeLessThanOrEqual(1);
  expect(flags, container.command.join(' ')).toHaveLength(2 + others.length);
  expect(max * 2 ** 20).toBeLessThanOrEqual((toBytes(container.resources.limits.memory) * 5) / 8);
  expect(initial).toBeGreaterThan(0);
  expect(initial).toBeLessThanOrEqual(max / 2);
  return flags;
}
