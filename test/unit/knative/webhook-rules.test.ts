import { describe, expect, it } from 'vitest';
import { cronIssue } from './lib/cron.js';
import { parseGoDurationMs, parseIsoDurationMs } from './lib/durations.js';
import type { K8sObject } from './lib/manifests.js';
import { autoscalingIssues, pingSourceIssues, serviceIssues, sinkBindingIssues, triggerIssues } from './lib/webhook.js';

// The checker of what only Knative's webhooks reject must itself reject: one row per rule.
const A = 'autoscaling.knative.dev/';

describe('webhook rules: autoscaling annotations', () => {
  const cases: [string, Record<string, string>, RegExp | null][] = [
    [
      'a valid set',
      {
        [`${A}class`]: 'kpa.autoscaling.knative.dev',
        [`${A}min-scale`]: '0',
        [`${A}max-scale`]: '10',
        [`${A}target`]: '50',
        [`${A}window`]: '60s',
        [`${A}scale-down-delay`]: '30m',
        [`${A}activation-scale`]: '2',
      },
      null,
    ],
    ['a short class name', { [`${A}class`]: 'kpa' }, /class must be/],
    ['an old camelCase name', { [`${A}minScale`]: '0' }, /unknown autoscaling annotation/],
    ['min above max', { [`${A}min-scale`]: '5', [`${A}max-scale`]: '2' }, /above max-scale/],
    ['a negative min', { [`${A}min-scale`]: '-5' }, /min-scale must be an integer/],
    ['a zero target', { [`${A}target`]: '0' }, /target must be a number > 0/],
    ['a window under 6s', { [`${A}window`]: '5s' }, /between 6s and 1h/],
    ['a window over 1h', { [`${A}window`]: '2h' }, /between 6s and 1h/],
    ['a scale-down delay over 1h', { [`${A}scale-down-delay`]: '90m' }, /scale-down-delay/],
    ['activation-scale 1', { [`${A}activation-scale`]: '1' }, /activation-scale must be an integer ≥ 2/],
    ['utilization 0', { [`${A}target-utilization-percentage`]: '0' }, /1-100/],
    [
      'an rps metric on the HPA',
      { [`${A}class`]: 'hpa.autoscaling.knative.dev', [`${A}metric`]: 'rps' },
      /not valid for hpa/,
    ],
  ];
  it.each(cases)('%s', (_name, annotations, expected) => {
    const issues = autoscalingIssues(annotations);
    if (expected === null) expect(issues).toEqual([]);
    else expect(issues.join('\n')).toMatch(expected);
  });
});

const service = (patch: (spec: any) => void): K8sObject => {
  // eslint-disable-line @typescript-eslint/no-explicit-any
  const doc: K8sObject = {
    apiVersion: 'serving.knative.dev/v1',
    kind: 'Service',
    metadata: { name: 's' },
    spec: {
      template: {
        metadata: { annotations: {} },
        spec: {
          containerConcurrency: 10,
          containers: [
            {
              name: 'c',
              image: 'i',
              ports: [{ name: 'http1', containerPort: 8080 }],
              readinessProbe: { tcpSocket: { port: 8080 } },
            },
          ],
        },
      },
    },
  };
  patch(doc.spec);
  return doc;
};

describe('webhook rules: Services, Triggers, PingSources, SinkBindings', () => {
  it('accepts a plain Service and rejects what the serving webhook rejects', () => {
    expect(serviceIssues(service(() => undefined))).toEqual([]);
    expect(serviceIssues(service((s) => (s.template.spec.containers[0].env = [{ name: 'PORT', value: '1' }])))).toEqual(
      [expect.stringMatching(/reserved/)],
    );
    expect(serviceIssues(service((s) => (s.template.spec.containerConcurrency = 5000))).join()).toMatch(/0-1000/);
    expect(serviceIssues(service((s) => (s.template.spec.timeoutSeconds = 100000))).join()).toMatch(/1-600/);
    expect(
      serviceIssues(
        service((s) => (s.template.spec.containers[0].readinessProbe = { tcpSocket: { port: 9000 } })),
      ).join(),
    ).toMatch(/container port/);
    expect(serviceIssues(service((s) => (s.template.metadata.annotations[`${A}target`] = '50'))).join()).toMatch(
      /above containerConcurrency/,
    );
  });

  it('rejects Trigger filters as an object, with two dialects, or with a misspelt dialect, and bad delivery values', () => {
    const trigger = (spec: object): K8sObject => ({
      apiVersion: 'eventing.knative.dev/v1',
      kind: 'Trigger',
      metadata: { name: 't' },
      spec: { broker: 'default', subscriber: { uri: 'http://x' }, ...spec },
    });
    expect(triggerIssues(trigger({ filters: [{ exact: { type: 'a' } }] }))).toEqual([]);
    expect(triggerIssues(trigger({ filters: { exact: { type: 'a' } } })).join()).toMatch(/must be a list/);
    expect(triggerIssues(trigger({ filters: [{ exact: { type: 'a' }, prefix: { type: 'b' } }] })).join()).toMatch(
      /exactly one dialect/,
    );
    expect(triggerIssues(trigger({ filters: [{ exakt: { type: 'a' } }] })).join()).toMatch(/unknown dialect/);
    expect(triggerIssues(trigger({ filters: [{ exact: { Type: 'a' } }] })).join()).toMatch(/attribute name/);
    expect(
      triggerIssues(trigger({ delivery: { backoffPolicy: 'bogus', backoffDelay: '1s', deadLetterSink: {} } })).length,
    ).toBe(3);
    expect(triggerIssues(trigger({ subscriber: {} })).join()).toMatch(/ref or a uri/);
  });

  it('rejects a bad cron, data with dataBase64, non-JSON JSON data, and an unknown time zone', () => {
    const ping = (spec: object): K8sObject => ({
      apiVersion: 'sources.knative.dev/v1',
      kind: 'PingSource',
      metadata: { name: 'p' },
      spec: { schedule: '*/5 * * * *', sink: { uri: 'http://x' }, ...spec },
    });
    expect(pingSourceIssues(ping({ contentType: 'application/json', data: '{"job":"rollups"}' }))).toEqual([]);
    expect(pingSourceIssues(ping({ schedule: '61 * * * *' })).join()).toMatch(/minute/);
    expect(pingSourceIssues(ping({ schedule: '* * * *' })).join()).toMatch(/5 fields/);
    expect(pingSourceIssues(ping({ data: 'a', dataBase64: 'YQ==' })).join()).toMatch(/mutually exclusive/);
    expect(pingSourceIssues(ping({ contentType: 'application/json', data: '{job' })).join()).toMatch(/JSON/);
    expect(pingSourceIssues(ping({ timezone: 'Mars/Olympus' })).join()).toMatch(/time zone/);
    expect(cronIssue('CRON_TZ=Europe/Berlin 0 18 * * mon-fri', () => true)).toBeUndefined();
    expect(cronIssue('@every 15m', (t) => parseGoDurationMs(t) !== undefined)).toBeUndefined();
  });

  it('rejects a SinkBinding subject with both name and selector', () => {
    const doc: K8sObject = {
      apiVersion: 'sources.knative.dev/v1',
      kind: 'SinkBinding',
      metadata: { name: 'b' },
      spec: {
        subject: { apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'x', selector: {} },
        sink: { uri: 'http://x' },
      },
    };
    expect(sinkBindingIssues(doc).join()).toMatch(/exactly one of name and selector/);
  });

  it('parses Go and ISO 8601 durations', () => {
    expect(parseGoDurationMs('1h30m')).toBe(5_400_000);
    expect(parseGoDurationMs('60s')).toBe(60_000);
    expect(parseGoDurationMs('60')).toBeUndefined();
    expect(parseIsoDurationMs('PT0.2S')).toBe(200);
    expect(parseIsoDurationMs('P1DT1H')).toBe(90_000_000);
    expect(parseIsoDurationMs('1s')).toBeUndefined();
  });
});
