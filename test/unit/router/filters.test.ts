import { describe, expect, it } from 'vitest';
import { compileExpression, compileTriggerFilter, lookupAttribute } from '../../../scripts/router/filters.js';
import type { SubscriptionsApiFilter } from '../../../scripts/router/manifest-schema.js';
import { CloudEvent } from '../../../shared/cloudevents.js';

// Knative Eventing filter semantics (pkg/eventfilter, Trigger spec), table-driven.
const event = new CloudEvent<unknown>({
  id: 'e-1',
  source: '/kiot/bridge',
  type: 'io.kiot.telemetry.received',
  subject: 'dev-42',
  data: { metrics: { t: 21 } },
  datacontenttype: 'application/json; charset=utf-8',
  tenant: 'acme',
});
const noSubject = new CloudEvent<unknown>({
  id: 'e-2',
  source: '/kiot/bridge',
  type: 'io.kiot.device.connected',
  data: {},
});

describe('Subscriptions API dialects (spec.filters)', () => {
  const cases: [string, SubscriptionsApiFilter, 'pass' | 'fail' | 'none'][] = [
    ['exact type matches', { exact: { type: 'io.kiot.telemetry.received' } }, 'pass'],
    ['exact is case-sensitive', { exact: { type: 'IO.KIOT.TELEMETRY.RECEIVED' } }, 'fail'],
    ['exact on an extension attribute', { exact: { tenant: 'acme' } }, 'pass'],
    ['exact on a missing extension fails', { exact: { region: 'eu' } }, 'fail'],
    ['prefix', { prefix: { type: 'io.kiot.' } }, 'pass'],
    ['prefix mismatch', { prefix: { type: 'com.other.' } }, 'fail'],
    ['suffix', { suffix: { type: '.received' } }, 'pass'],
    ['suffix mismatch', { suffix: { type: '.publish' } }, 'fail'],
    ['suffix on source', { suffix: { source: '/bridge' } }, 'pass'],
    ['datamediatype drops the parameters', { exact: { datamediatype: 'application/json' } }, 'pass'],
    ['all: every one passes', { all: [{ prefix: { type: 'io.kiot.' } }, { exact: { subject: 'dev-42' } }] }, 'pass'],
    ['all: one fails', { all: [{ prefix: { type: 'io.kiot.' } }, { exact: { subject: 'dev-7' } }] }, 'fail'],
    ['any: one passes', { any: [{ exact: { type: 'x' } }, { suffix: { type: '.received' } }] }, 'pass'],
    ['any: none passes', { any: [{ exact: { type: 'x' } }, { exact: { type: 'y' } }] }, 'fail'],
    ['not inverts a pass', { not: { exact: { type: 'io.kiot.telemetry.received' } } }, 'fail'],
    ['not inverts a fail', { not: { exact: { type: 'io.kiot.mqtt.publish' } } }, 'pass'],
    ['not of a missing attribute passes', { not: { exact: { region: 'eu' } } }, 'pass'],
    [
      'nested: any of (all of prefix+subject) or exact, under not',
      {
        not: {
          any: [
            { all: [{ prefix: { type: 'io.kiot.' } }, { exact: { subject: 'dev-42' } }] },
            { exact: { type: 'z' } },
          ],
        },
      },
      'fail',
    ],
    ['an empty expression decides nothing', {}, 'none'],
  ];
  it.each(cases)('%s', (_name, filter, expected) => {
    expect(compileExpression(filter)(event)).toBe(expected);
  });

  it('treats an unset optional attribute as missing for every dialect', () => {
    expect(compileExpression({ exact: { subject: 'dev-42' } })(noSubject)).toBe('fail');
    expect(compileExpression({ prefix: { subject: 'dev' } })(noSubject)).toBe('fail');
    expect(lookupAttribute(noSubject, 'subject')).toBeUndefined();
  });
});

describe('a Trigger filter', () => {
  const matches = (spec: Parameters<typeof compileTriggerFilter>[0], e = event) => compileTriggerFilter(spec)(e);

  it('passes every event without filter or filters', () => {
    expect(matches({})).toBe(true);
    expect(matches({ filters: [] })).toBe(true);
    expect(matches({ filter: { attributes: {} } })).toBe(true);
  });

  it('matches spec.filter.attributes exactly on each attribute', () => {
    expect(matches({ filter: { attributes: { type: 'io.kiot.telemetry.received', subject: 'dev-42' } } })).toBe(true);
    expect(matches({ filter: { attributes: { type: 'io.kiot.telemetry.received', subject: 'dev-1' } } })).toBe(false);
    expect(matches({ filter: { attributes: { tenant: 'acme' } } })).toBe(true);
  });

  it('reads "" in attributes as "any value, but present", and a missing attribute fails', () => {
    expect(matches({ filter: { attributes: { subject: '' } } })).toBe(true);
    expect(matches({ filter: { attributes: { subject: '' } } }, noSubject)).toBe(false);
    expect(matches({ filter: { attributes: { region: 'eu' } } })).toBe(false);
  });

  it('ANDs the entries of spec.filters', () => {
    expect(matches({ filters: [{ prefix: { type: 'io.kiot.' } }, { exact: { subject: 'dev-42' } }] })).toBe(true);
    expect(matches({ filters: [{ prefix: { type: 'io.kiot.' } }, { exact: { subject: 'other' } }] })).toBe(false);
    expect(matches({ filters: [{}, { exact: { subject: 'dev-42' } }] })).toBe(true);
  });

  it('lets a non-empty spec.filters override spec.filter, as Knative does', () => {
    const spec = {
      filter: { attributes: { type: 'io.kiot.mqtt.publish' } },
      filters: [{ exact: { type: 'io.kiot.telemetry.received' } }],
    };
    expect(matches(spec)).toBe(true);
    expect(matches({ ...spec, filters: [] })).toBe(false);
  });
});
