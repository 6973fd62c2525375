import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { admit } from './lib/admission.js';

// Manifests a Knative cluster refuses, each with the message the cluster gives (Knative's own admission
// code, tools/knative), and their valid neighbours, which it admits. One row per rule.
const A = 'autoscaling.knative.dev/';
const SERVING = 'admission webhook "validation.webhook.serving.knative.dev" denied the request: validation failed: ';
const EVENTING = 'admission webhook "validation.webhook.eventing.knative.dev" denied the request: validation failed: ';
const esc = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const serving = (text: string) => new RegExp(`${esc(SERVING)}[^]*${text}`);
const eventing = (text: string) => new RegExp(`${esc(EVENTING)}[^]*${text}`);

type Doc = Record<string, any>;
/** A Service like kiot's, changed by `patch`. */
function service(patch: (spec: Doc, doc: Doc) => void = () => undefined): Doc {
  const doc: Doc = {
    apiVersion: 'serving.knative.dev/v1',
    kind: 'Service',
    metadata: { name: 's', namespace: 'kiot' },
    spec: {
      template: {
        metadata: { annotations: { [`${A}min-scale`]: '0' } },
        spec: {
          containerConcurrency: 10,
          containers: [
            {
              image: 'ghcr.io/acme/kiot:1',
              ports: [{ name: 'http1', containerPort: 8080 }],
              readinessProbe: { tcpSocket: { port: 8080 } },
            },
          ],
        },
      },
    },
  };
  patch(doc.spec.template, doc);
  return doc;
}
const annotated = (annotations: Record<string, string>) =>
  service((template) => Object.assign(template.metadata.annotations, annotations));
const container = (patch: (c: Doc) => void) => service((template) => patch(template.spec.containers[0]));
const trigger = (spec: Doc): Doc => ({
  apiVersion: 'eventing.knative.dev/v1',
  kind: 'Trigger',
  metadata: { name: 't', namespace: 'kiot' },
  spec: { broker: 'default', filters: [{ exact: { type: 'io.kiot.a' } }], subscriber: { uri: 'http://x' }, ...spec },
});
const ping = (spec: Doc): Doc => ({
  apiVersion: 'sources.knative.dev/v1',
  kind: 'PingSource',
  metadata: { name: 'p', namespace: 'kiot' },
  spec: { schedule: '*/5 * * * *', sink: { uri: 'http://x' }, ...spec },
});

const refused: [string, Doc, RegExp][] = [
  // serving: autoscaling annotations (serving's pkg/apis/autoscaling)
  [
    'min-scale above max-scale',
    annotated({ [`${A}min-scale`]: '5', [`${A}max-scale`]: '2' }),
    serving('max-scale=2 is less than min-scale=5'),
  ],
  [
    'a negative min-scale',
    annotated({ [`${A}min-scale`]: '-5' }),
    serving('expected 0 <= -5 <= 2147483647: spec.template.metadata.annotations.autoscaling.knative.dev/min-scale'),
  ],
  ['a zero target', annotated({ [`${A}target`]: '0' }), serving('target 0 should be at least 0.01')],
  ['a window under 6 s', annotated({ [`${A}window`]: '5s' }), serving('expected 6s <= 5s <= 1h0m0s')],
  ['a window over 1 h', annotated({ [`${A}window`]: '2h' }), serving('expected 6s <= 2h <= 1h0m0s')],
  [
    'a scale-down delay over 1 h',
    annotated({ [`${A}scale-down-delay`]: '90m' }),
    serving('expected 0s <= 90m <= 1h0m0s'),
  ],
  [
    'activation-scale 1',
    annotated({ [`${A}activation-scale`]: '1' }),
    serving('activation-scale=1 must be greater than 1'),
  ],
  ['utilization 0 %', annotated({ [`${A}target-utilization-percentage`]: '0' }), serving('expected 1 <= 0 <= 100')],
  [
    'autoscaling annotations on the Service instead of its template',
    service((_t, doc) => (doc.metadata.annotations = { [`${A}min-scale`]: '0' })),
    serving('autoscaling annotations must be put under "spec.template.metadata.annotations" to work'),
  ],
  // serving: the revision spec
  [
    'a reserved env name',
    container((c) => (c.env = [{ name: 'PORT', value: '1' }])),
    serving('"PORT" is a reserved environment variable'),
  ],
  [
    'containerConcurrency over 1000',
    service((t) => (t.spec.containerConcurrency = 5000)),
    serving('expected 0 <= 5000 <= 1000: spec.template.spec.containerConcurrency'),
  ],
  [
    'timeoutSeconds over the 600 s cap',
    service((t) => (t.spec.timeoutSeconds = 100000)),
    serving('expected 0 <= 100000 <= 600: spec.template.spec.timeoutSeconds'),
  ],
  [
    'a probe with two handlers',
    container((c) => (c.readinessProbe.httpGet = { port: 8080 })),
    serving('expected exactly one, got both'),
  ],
  [
    'a port queue-proxy reserves',
    container((c) => (c.ports = [{ containerPort: 8012 }])),
    serving('8012 is a reserved port'),
  ],
  [
    'a privileged container',
    container((c) => (c.securityContext = { privileged: true })),
    serving('must not set the field\\(s\\): spec.template.spec.containers\\[0\\].securityContext.privileged'),
  ],
  [
    'an added capability',
    container((c) => (c.securityContext = { capabilities: { add: ['NET_ADMIN'] } })),
    serving('must not set the field\\(s\\): .*capabilities.add'),
  ],
  [
    'a name over 63 characters',
    service((_t, doc) => (doc.metadata.name = 'n'.repeat(64))),
    serving('must be no more than 63 characters'),
  ],
  // the API server and the defaulting webhook, before any validation
  [
    'an unknown field',
    service((t) => (t.spec.bogus = 1)),
    /Service in version "v1" cannot be handled as a Service: strict decoding error: unknown field "spec.template.spec.bogus"/,
  ],
  [
    'a number written as text',
    service((t) => (t.spec.containerConcurrency = 'ten')),
    /admission webhook "webhook.serving.knative.dev" denied the request: mutation failed: cannot decode incoming new object/,
  ],
  // eventing: Triggers
  [
    'Trigger filters as an object',
    trigger({ filters: { exact: { type: 'a' } } }),
    /strict decoding error: unknown field "spec.filters.exact"/,
  ],
  [
    'two dialects in one filter',
    trigger({ filters: [{ exact: { type: 'a' }, prefix: { type: 'b' } }] }),
    eventing('multiple dialects found, filters can have only one dialect set'),
  ],
  [
    'a misspelt dialect',
    trigger({ filters: [{ exakt: { type: 'a' } }] }),
    /strict decoding error: unknown field "spec.filters\[0\].exakt"/,
  ],
  [
    'an attribute name that is not CloudEvents',
    trigger({ filters: [{ exact: { Type: 'a' } }] }),
    eventing('invalid key name "Type": spec.filters\\[0\\].exact\\[Type\\]'),
  ],
  ['invalid CESQL', trigger({ filters: [{ cesql: "type = 'a' AND" }] }), eventing('spec.filters\\[0\\].cesql')],
  ['no broker', trigger({ broker: undefined }), eventing('missing field\\(s\\): spec.broker')],
  [
    'a subscriber with neither ref nor uri',
    trigger({ subscriber: {} }),
    eventing('expected at least one, got none: spec.subscriber.ref, spec.subscriber.uri'),
  ],
  [
    'a backoff policy that does not exist',
    trigger({ delivery: { backoffPolicy: 'bogus' } }),
    eventing('invalid value: bogus: spec.delivery.backoffPolicy'),
  ],
  [
    'a Go duration where ISO 8601 is due',
    trigger({ delivery: { backoffDelay: '1s' } }),
    eventing('invalid value: 1s: spec.delivery.backoffDelay'),
  ],
  [
    'an empty dead-letter sink',
    trigger({ delivery: { deadLetterSink: {} } }),
    eventing('expected at least one, got none: spec.delivery.deadLetterSink.ref'),
  ],
  ['a negative retry', trigger({ delivery: { retry: -1 } }), eventing('invalid value: -1: spec.delivery.retry')],
  [
    'a Broker dead-letter sink with a relative URI',
    {
      apiVersion: 'eventing.knative.dev/v1',
      kind: 'Broker',
      metadata: { name: 'b', namespace: 'kiot' },
      spec: { delivery: { deadLetterSink: { uri: 'dead' } } },
    },
    eventing('Relative URI is not allowed'),
  ],
  // eventing: sources
  [
    'a cron minute of 61',
    ping({ schedule: '61 * * * *' }),
    eventing('end of range \\(61\\) above maximum \\(59\\): 61: spec.schedule'),
  ],
  ['a cron of four fields', ping({ schedule: '* * * *' }), eventing('found 4')],
  [
    '@every, which the standard cron parser lacks',
    ping({ schedule: '@every 15m' }),
    eventing('unsupported descriptor @every'),
  ],
  [
    'data and dataBase64 at once',
    ping({ data: 'a', dataBase64: 'YQ==' }),
    eventing('expected exactly one, got both: spec.data, spec.dataBase64'),
  ],
  [
    'JSON data that is not JSON',
    ping({ contentType: 'application/json', data: '{job' }),
    eventing('invalid character .* spec.data'),
  ],
  ['dataBase64 that is not base64', ping({ dataBase64: 'not base64!' }), eventing('illegal base64 data')],
  [
    'an unknown time zone',
    ping({ timezone: 'Mars/Olympus' }),
    eventing('unknown time zone Mars/Olympus: spec.timezone'),
  ],
  [
    'a SinkBinding subject with both a name and a selector',
    {
      apiVersion: 'sources.knative.dev/v1',
      kind: 'SinkBinding',
      metadata: { name: 'b', namespace: 'kiot' },
      spec: {
        subject: { apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'x', selector: { matchLabels: { a: 'b' } } },
        sink: { uri: 'http://x' },
      },
    },
    eventing('expected exactly one, got both: spec.subject.name, spec.subject.selector'),
  ],
  [
    'a ContainerSource without containers',
    {
      apiVersion: 'sources.knative.dev/v1',
      kind: 'ContainerSource',
      metadata: { name: 'c', namespace: 'kiot' },
      spec: { template: { spec: { containers: [] } }, sink: { uri: 'http://x' } },
    },
    eventing('missing field\\(s\\): spec.containers'),
  ],
  // Kubernetes kinds and versions
  [
    'a StatefulSet field that does not exist',
    { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'b', namespace: 'kiot' }, spec: { replicaz: 2 } },
    /StatefulSet in version "v1" cannot be handled as a StatefulSet: strict decoding error: unknown field "spec.replicaz"/,
  ],
  [
    'a name that is not a DNS subdomain',
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'Bad_Name', namespace: 'kiot' } },
    /^Error from server \(Invalid\): .*ConfigMap "Bad_Name" is invalid: metadata.name/,
  ],
  [
    'a version Knative does not serve',
    { apiVersion: 'serving.knative.dev/v2', kind: 'Service', metadata: { name: 'v2', namespace: 'kiot' } },
    /no matches for kind "Service" in version "serving.knative.dev\/v2"/,
  ],
];

const admitted: [string, Doc][] = [
  ["a Service like kiot's", service()],
  [
    'a full set of valid autoscaling annotations',
    annotated({
      [`${A}class`]: 'kpa.autoscaling.knative.dev',
      [`${A}max-scale`]: '10',
      [`${A}target`]: '5',
      [`${A}window`]: '60s',
      [`${A}scale-down-delay`]: '30m',
      [`${A}activation-scale`]: '2',
    }),
  ],
  ['a liveness probe on another port', container((c) => (c.livenessProbe = { tcpSocket: { port: 9000 } }))],
  ["a Trigger like kiot's", trigger({ delivery: { retry: 3, backoffPolicy: 'exponential', backoffDelay: 'PT0.2S' } })],
  ['a cron with CRON_TZ and day names', ping({ schedule: 'CRON_TZ=Europe/Berlin 0 18 * * mon-fri' })],
  ['JSON data for a JSON content type', ping({ contentType: 'application/json', data: '{"task":"rollups"}' })],
];

describe('Knative refuses', () => {
  const results = admit(refused.map(([, doc]) => stringify(doc)).join('---\n'), { source: 'broken.yaml' });
  it.each(refused.map(([name, , expected], i) => [name, i, expected] as const))('%s', (_name, i, expected) => {
    const result = results[i]!;
    expect(result.allowed).toBe(false);
    expect(result.message).toMatch(
      /^(Error from server \((BadRequest|Invalid)\): error when creating "broken.yaml": |error: )/,
    );
    expect(result.message).toMatch(expected);
  });
});

describe('Knative admits', () => {
  const results = admit(admitted.map(([, doc]) => stringify(doc)).join('---\n'));
  it.each(admitted.map(([name], i) => [name, i] as const))('%s', (_name, i) => {
    expect(results[i]!.message).toMatch(/ admitted$/);
    expect(results[i]!.checked).toBe('knative');
  });
});
