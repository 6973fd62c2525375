import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serviceMapSchema } from '../../../scripts/router/destinations.js';
import { loadTopology, ManifestError } from '../../../scripts/router/load-manifests.js';
import { CloudEvent } from '../../../shared/cloudevents.js';

const BROKER = `apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: { name: default, namespace: kiot }
spec:
  delivery:
    retry: 3
    backoffPolicy: linear
    backoffDelay: PT0.5S
    deadLetterSink: { ref: { apiVersion: serving.knative.dev/v1, kind: Service, name: dead-letters } }
`;

const trigger = (name: string, spec: string) => `apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: { name: ${name} }
spec:
${spec}`;

const SUBSCRIBER = '  subscriber: { ref: { apiVersion: v1, kind: Service, name: app } }\n';

describe('loading Brokers and Triggers from a manifest directory', () => {
  let root: string;
  let n = 0;
  const services = serviceMapSchema.parse('app=http://127.0.0.1:1/,dead-letters=http://127.0.0.1:2/');

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'kiot-router-manifests-'));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  /** A fresh directory holding `files` (path → YAML text). */
  async function dir(files: Record<string, string>): Promise<string> {
    n += 1;
    const base = join(root, `case-${n}`);
    for (const [path, text] of Object.entries(files)) {
      await mkdir(join(base, path, '..'), { recursive: true });
      await writeFile(join(base, path), text);
    }
    return base;
  }

  const load = (base: string) => loadTopology({ dir: base, namespace: 'kiot', services });

  it('reads multi-document files recursively, ignores other kinds, and defaults namespace and broker', async () => {
    const base = await dir({
      'kustomization.yaml': 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [a.yaml]\n',
      'eventing/broker.yaml': BROKER,
      'a/b/triggers.yml': [
        'apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: { name: app }\nspec: {}\n',
        trigger('t-one', `  filters: [{ exact: { type: a } }]\n${SUBSCRIBER}`),
        'apiVersion: triggers.tekton.dev/v1beta1\nkind: Trigger\nmetadata: { name: not-knative }\nspec: {}\n',
        trigger(
          't-two',
          `  broker: default\n  filter: { attributes: { type: b } }\n${SUBSCRIBER}  delivery: { retry: 1 }\n`,
        ),
        '',
      ].join('---\n'),
    });
    const topology = await load(base);
    const broker = topology.brokers.get('kiot/default')!;
    expect(broker.triggers.map((t) => t.key)).toEqual(['kiot/t-one', 'kiot/t-two']);
    const [one, two] = broker.triggers;
    expect(one!.matches(new CloudEvent({ id: '1', source: '/s', type: 'a' }))).toBe(true);
    expect(one!.matches(new CloudEvent({ id: '1', source: '/s', type: 'b' }))).toBe(false);
    // A Trigger without delivery takes the Broker's; one with its own replaces it as a whole.
    expect(one!.policy).toMatchObject({
      retry: 3,
      backoff: { policy: 'linear', delayMs: 500 },
      deadLetterSink: { url: 'http://127.0.0.1:2/' },
    });
    expect(two!.policy.retry).toBe(1);
    expect(two!.policy.backoff).toBeUndefined();
    expect(two!.policy.deadLetterSink).toBeUndefined();
    expect(topology.warnings).toEqual([]);
  });

  it('warns about (but loads) a Trigger whose Service has no local URL', async () => {
    const base = await dir({
      'b.yaml': BROKER,
      't.yaml': trigger(
        'orphan',
        '  subscriber: { ref: { apiVersion: serving.knative.dev/v1, kind: Service, name: report-generation } }\n',
      ),
    });
    const topology = await load(base);
    expect(topology.brokers.get('kiot/default')!.triggers[0]!.subscriber).toEqual({
      unresolved: 'Service kiot/report-generation is not mapped in ROUTER_SERVICES',
    });
    expect(topology.warnings).toEqual([
      'Trigger kiot/orphan: Service kiot/report-generation is not mapped in ROUTER_SERVICES',
    ]);
  });

  const bad: [string, string, RegExp][] = [
    [
      'filters given as an object, not a list',
      `  filters: { exact: { type: a } }\n${SUBSCRIBER}`,
      /spec\.filters: .*array/i,
    ],
    [
      'a cesql filter',
      `  filters: [{ cesql: "type = 'a'" }]\n${SUBSCRIBER}`,
      /cesql filters are not supported by the local router/,
    ],
    [
      'two dialects in one filter',
      `  filters: [{ exact: { type: a }, prefix: { type: b } }]\n${SUBSCRIBER}`,
      /only one dialect per filter/,
    ],
    ['a misspelt dialect', `  filters: [{ exacct: { type: a } }]\n${SUBSCRIBER}`, /exacct/],
    [
      'two attributes in one exact',
      `  filters: [{ exact: { type: a, source: b } }]\n${SUBSCRIBER}`,
      /exactly one attribute/,
    ],
    ['an empty exact value', `  filters: [{ exact: { type: "" } }]\n${SUBSCRIBER}`, /must not be empty/],
    ['an upper-case attribute name', `  filter: { attributes: { Type: a } }\n${SUBSCRIBER}`, /lower-case/],
    ['no subscriber', '  broker: default\n', /spec\.subscriber/],
    ['retry as a string', `${SUBSCRIBER}  delivery: { retry: "3" }\n`, /spec\.delivery\.retry/],
    ['an unknown backoff policy', `${SUBSCRIBER}  delivery: { backoffPolicy: bogus }\n`, /backoffPolicy/],
    [
      'a backoffDelay that is not ISO 8601',
      `${SUBSCRIBER}  delivery: { backoffPolicy: linear, backoffDelay: 200ms }\n`,
      /ISO 8601/,
    ],
    ['an unknown broker', `  broker: elsewhere\n${SUBSCRIBER}`, /Broker kiot\/elsewhere is not defined/],
    [
      'a Channel subscriber',
      '  subscriber: { ref: { apiVersion: messaging.knative.dev/v1, kind: Channel, name: c } }\n',
      /not supported locally/,
    ],
    ['a relative uri alone', '  subscriber: { uri: /events }\n', /not absolute/],
  ];
  it.each(bad)('rejects %s, naming the file and the document', async (_name, spec, message) => {
    const base = await dir({
      'broker.yaml': BROKER,
      'bad.yaml': `${BROKER}---\n${trigger('broken', spec)}`.replace(
        /name: default, namespace: kiot/,
        'name: other, namespace: kiot',
      ),
    });
    const error = await load(base).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ManifestError);
    expect((error as ManifestError).message).toMatch(/bad\.yaml, document 2 \(Trigger broken\)/);
    expect((error as ManifestError).message).toMatch(message);
    expect((error as ManifestError).document).toBe(2);
  });

  it('rejects YAML syntax errors and duplicate Triggers', async () => {
    const syntax = await load(await dir({ 'x.yaml': 'kind: Trigger\n  bad: [indent\n' })).catch((e: unknown) => e);
    expect(syntax).toBeInstanceOf(ManifestError);
    expect((syntax as Error).message).toMatch(/x\.yaml, document 1 \(YAML\)/);

    const twice = trigger('same', SUBSCRIBER);
    const duplicate = await load(await dir({ 'b.yaml': BROKER, 't.yaml': `${twice}---\n${twice}` })).catch(
      (e: unknown) => e,
    );
    expect((duplicate as Error).message).toMatch(/t\.yaml, document 2 .*kiot\/same is defined twice/);
  });
});
