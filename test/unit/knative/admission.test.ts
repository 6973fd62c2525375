import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { type AdmissionResult, admit, admitText } from './lib/admission.js';
import { kustomizeYaml } from './lib/kustomize.js';
import { type K8sObject, parseDocuments, ROOT } from './lib/manifests.js';

// Every object of every kustomization, through Knative's own admission code (tools/knative): the API
// server's strict decoding against the CRD schema, the defaulting webhook with the release's ConfigMaps,
// the schema validation and the validating webhook. Refusals are in admission-refusals.test.ts.
const DIRS = ['knative', 'knative/overlays/dev', 'knative/overlays/prod'];
const STRICT = join(ROOT, 'test/unit/knative/fixtures/strict-cluster.yaml');
const OIDC = join(ROOT, 'test/unit/knative/fixtures/oidc-cluster.yaml');
const isKnative = (result: AdmissionResult) => /\.knative\.dev\//.test(result.apiVersion ?? '');
const refusals = (results: AdmissionResult[]) => results.filter((r) => !r.allowed).map((r) => r.message);
const rendered = new Map(DIRS.map((dir) => [dir, kustomizeYaml(dir)]));

describe('Knative admission of the manifests', () => {
  it.each(DIRS)('admits every object of %s, each Knative one through both webhooks, without a warning', (dir) => {
    const results = admit(rendered.get(dir)!, { source: dir });
    expect(refusals(results)).toEqual([]);
    expect(results.length).toBe(parseDocuments(rendered.get(dir)!).length);
    expect(results.filter(isKnative).length).toBeGreaterThanOrEqual(25);
    expect(results.filter(isKnative).every((r) => r.checked === 'knative')).toBe(true);
    expect(results.filter((r) => !isKnative(r)).every((r) => r.checked === 'builtin')).toBe(true);
    expect(results.flatMap((r) => r.warnings ?? [])).toEqual([]);
  });

  it.each(DIRS)('admits every object of %s in a cluster stricter than the release defaults', (dir) => {
    expect(refusals(admit(rendered.get(dir)!, { source: dir, configs: [STRICT] }))).toEqual([]);
  });

  it.each(['knative/overlays/oidc', 'knative/overlays/prod-oidc'])(
    'admits %s where sender identity is on (release defaults with authentication-oidc, and the ' +
      'stricter cluster); without it, exactly the EventPolicies are refused',
    (dir) => {
      const yaml = kustomizeYaml(dir);
      const oidc = admit(yaml, { source: dir, configs: [OIDC] });
      expect(refusals(oidc)).toEqual([]);
      expect(oidc.length).toBe(parseDocuments(yaml).length);
      expect(oidc.flatMap((r) => r.warnings ?? [])).toEqual([]);
      expect(oidc.filter((r) => r.kind === 'EventPolicy').every((r) => r.checked === 'knative')).toBe(true);
      expect(refusals(admit(yaml, { source: dir, configs: [STRICT] }))).toEqual([]);
      const without = admit(yaml, { source: dir }).filter((r) => !r.allowed);
      expect(without.length).toBeGreaterThan(0);
      expect(
        without.every((r) => r.kind === 'EventPolicy' && /oidc-authentication feature not enabled/.test(r.message)),
      ).toBe(true);
      expect(without.length).toBe(oidc.filter((r) => r.kind === 'EventPolicy').length);
    },
  );

  it('admits what scripts/deploy applies for prod (the pushed image set)', () => {
    const applied = spawnSync('node', ['scripts/deploy-lib/manifests.mjs', '--image', 'ghcr.io/acme/kiot:1.2.3'], {
      cwd: ROOT,
      encoding: 'utf8',
      input: rendered.get('knative/overlays/prod'),
    });
    expect(applied.status).toBe(0);
    const results = admit(applied.stdout);
    expect(refusals(results)).toEqual([]);
    expect(results.filter(isKnative).length).toBeGreaterThan(15);
  });

  it('stores each Service as the webhooks default it: the creator, and the release defaults filled in', () => {
    const results = admit(rendered.get('knative')!);
    const service = results.find((r) => r.kind === 'Service' && r.name === 'telemetry-ingest')!;
    const object = service.object as K8sObject;
    expect(object.metadata.annotations?.['serving.knative.dev/creator']).toBe('kubernetes-admin');
    // Knative's defaulting webhook: service links off (config-defaults), the probe's and the port's defaults,
    // all traffic to the latest revision.
    expect(object.spec.template.spec.enableServiceLinks).toBe(false);
    expect(object.spec.template.spec.containers[0].readinessProbe.successThreshold).toBe(1);
    expect(object.spec.template.spec.containers[0].ports[0].protocol).toBe('TCP');
    expect(object.spec.traffic).toEqual([{ latestRevision: true, percent: 100 }]);
  });
});

describe('a stricter cluster (test/unit/knative/fixtures/strict-cluster.yaml) is in force', () => {
  const service = (name: string, annotations: Record<string, string>, containerConcurrency: number) =>
    stringify({
      apiVersion: 'serving.knative.dev/v1',
      kind: 'Service',
      metadata: { name, namespace: 'kiot' },
      spec: {
        template: {
          metadata: { annotations },
          spec: { containerConcurrency, containers: [{ image: 'ghcr.io/acme/kiot:1' }] },
        },
      },
    });
  const stream = [
    service('wide', {}, 300),
    service('tall', { 'autoscaling.knative.dev/max-scale': '150' }, 10),
    stringify({
      apiVersion: 'eventing.knative.dev/v1',
      kind: 'Broker',
      metadata: { name: 'classless', namespace: 'kiot' },
    }),
    stringify({
      apiVersion: 'sources.knative.dev/v1',
      kind: 'PingSource',
      metadata: { name: 'big', namespace: 'kiot' },
      spec: { schedule: '* * * * *', data: 'x'.repeat(5000), sink: { uri: 'http://x.kiot.svc' } },
    }),
    stringify({
      apiVersion: 'eventing.knative.dev/v1alpha1',
      kind: 'EventPolicy',
      metadata: { name: 'from-broker', namespace: 'kiot' },
      spec: { from: [{ ref: { apiVersion: 'eventing.knative.dev/v1', kind: 'Broker', name: 'default' } }] },
    }),
  ].join('---\n');
  const defaults = admit(stream);
  const strict = admit(stream, { configs: [STRICT] });

  it('the release defaults admit what the stricter settings refuse', () => {
    expect(defaults.slice(0, 4).map((r) => r.allowed)).toEqual([true, true, true, true]);
    expect(strict[0]!.message).toMatch(/expected 1 <= 300 <= 200: spec.template.spec.containerConcurrency/);
    expect(strict[1]!.message).toMatch(/expected 1 <= 150 <= 100: .*max-scale/);
    expect(strict[3]!.message).toMatch(/the data length of 5000 bytes exceeds limit set at 4096/);
  });

  it('its defaults are applied: a Broker without a class gets Kafka, containers the secure pod defaults', () => {
    const broker = strict[2]!.object as K8sObject;
    expect(broker.metadata.annotations?.['eventing.knative.dev/broker.class']).toBe('Kafka');
    expect((defaults[2]!.object as K8sObject).metadata.annotations?.['eventing.knative.dev/broker.class']).toBe(
      'MTChannelBasedBroker',
    );
    const tall = admit(service('secure', {}, 10), { configs: [STRICT] })[0]!;
    expect((tall.object as K8sObject).spec.template.spec.containers[0].securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      seccompProfile: { type: 'RuntimeDefault' },
    });
  });

  it('an EventPolicy needs OIDC authentication, which the stricter cluster enables', () => {
    expect(defaults[4]!.message).toMatch(/oidc-authentication feature not enabled/);
    expect(strict[4]!.allowed).toBe(true);
  });
});

describe('a cluster that caps request timeouts below what kiot needs', () => {
  const capped = join(ROOT, 'test/unit/knative/fixtures/timeout-300.yaml');
  const services = parseDocuments(rendered.get('knative')!).filter(
    (doc) => (doc as K8sObject).apiVersion === 'serving.knative.dev/v1',
  ) as K8sObject[];
  const longest = Math.max(...services.map((s) => s.spec.template.spec.timeoutSeconds as number));

  it('refuses exactly the Services whose timeoutSeconds is above the cap, in Knative words', () => {
    const refused = admit(rendered.get('knative')!, { configs: [capped] }).filter((r) => !r.allowed);
    const over = services.filter((s) => s.spec.template.spec.timeoutSeconds > 300);
    expect(over.length).toBeGreaterThan(0);
    expect(refused.map((r) => r.name).sort()).toEqual(over.map((s) => s.metadata.name).sort());
    for (const result of refused)
      expect(result.message).toMatch(/denied the request: validation failed: expected 0 <= \d+ <= 300/);
  });

  it('docs/deploy.md states the settings kiot needs: the longest timeout, the highest concurrency and max-scale', () => {
    const deploy = readFileSync(join(ROOT, 'docs/deploy.md'), 'utf8');
    const highest = (read: (s: K8sObject) => number) => Math.max(...services.map(read));
    expect(deploy).toContain(`\`max-revision-timeout-seconds\` of at least ${longest}`);
    expect(deploy).toContain(
      `\`container-concurrency-max-limit\` of at least ${highest((s) => s.spec.template.spec.containerConcurrency)}`,
    );
    expect(deploy).toContain(
      `\`max-scale-limit\` of at least ${highest((s) => Number(s.spec.template.metadata.annotations['autoscaling.knative.dev/max-scale']))}`,
    );
  });
});

describe('the command line', () => {
  it('its Go sources are gofmt-formatted', () => {
    const gofmt = spawnSync('gofmt', ['-l', '.'], { cwd: join(ROOT, 'tools/knative'), encoding: 'utf8' });
    expect(gofmt.status).toBe(0);
    expect(gofmt.stdout).toBe('');
  });

  it("prints kubectl's lines and exits 1 when an object is refused", () => {
    const ok = admitText(
      stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'fine', namespace: 'kiot' } }),
    );
    expect(ok.status).toBe(0);
    expect(ok.stdout).toBe('configmap/fine admitted\n');
    const refused = admitText(
      stringify({
        apiVersion: 'serving.knative.dev/v1',
        kind: 'Service',
        metadata: { name: 'env', namespace: 'kiot' },
        spec: {
          template: { spec: { containers: [{ image: 'ghcr.io/acme/kiot:1', env: [{ name: 'PORT', value: '1' }] }] } },
        },
      }),
    );
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(
      new RegExp(
        /^Error from server \(BadRequest\): error when creating "STDIN": /.source +
          /admission webhook "validation\.webhook\.serving\.knative\.dev" denied the request: /.source +
          /validation failed: "PORT" is a reserved environment variable/.source,
        'm',
      ),
    );
  });
});
