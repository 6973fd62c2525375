import { describe, expect, it } from 'vitest';
import {
  backoffSchedule,
  DEFAULT_ATTEMPT_TIMEOUT_MS,
  deliveryPolicyOf,
  retryDelayMs,
} from '../../../scripts/router/delivery-policy.js';
import {
  resolveDestination,
  serviceMapSchema,
  UnsupportedDestinationError,
} from '../../../scripts/router/destinations.js';
import { parseIsoDurationMs } from '../../../scripts/router/iso-duration.js';

describe('ISO 8601 durations (Knative delivery spec: backoffDelay, timeout)', () => {
  it.each([
    ['PT0.2S', 200],
    ['PT1S', 1_000],
    ['PT0,5S', 500],
    ['PT1M30S', 90_000],
    ['PT2H', 7_200_000],
    ['P1D', 86_400_000],
    ['P1W', 604_800_000],
    ['P1DT1S', 86_401_000],
    ['PT0S', 0],
  ])('%s = %i ms', (text, ms) => {
    expect(parseIsoDurationMs(text)).toBe(ms);
  });

  it.each(
    ['', 'P', 'PT', '0.2S', 'PT0.2', '200ms', 'P1H', '-PT1S', ' PT1S', 'PT1S ', 'P1DT', 'PT1SPT2S', 'pt1s'].map(
      (text) => [text],
    ),
  )('rejects %j', (text) => {
    expect(parseIsoDurationMs(text)).toBeUndefined();
  });
});

describe('backoff schedule', () => {
  const services = new Map<string, string>();

  it('is backoffDelay * 2^n for exponential', () => {
    const policy = deliveryPolicyOf(
      { retry: 4, backoffPolicy: 'exponential', backoffDelay: 'PT0.1S' },
      'kiot',
      services,
    );
    expect(backoffSchedule(policy)).toEqual([200, 400, 800, 1_600]);
  });

  it('is backoffDelay * n for linear', () => {
    const policy = deliveryPolicyOf({ retry: 4, backoffPolicy: 'linear', backoffDelay: 'PT0.1S' }, 'kiot', services);
    expect(backoffSchedule(policy)).toEqual([100, 200, 300, 400]);
  });

  it('waits 0 unless both backoffPolicy and backoffDelay are set (Knative RetryConfigFromDeliverySpec)', () => {
    expect(backoffSchedule(deliveryPolicyOf({ retry: 2, backoffDelay: 'PT1S' }, 'kiot', services))).toEqual([0, 0]);
    expect(backoffSchedule(deliveryPolicyOf({ retry: 2, backoffPolicy: 'linear' }, 'kiot', services))).toEqual([0, 0]);
  });

  it('defaults to no retries, binary, and a generous attempt timeout; honours timeout and format', () => {
    const none = deliveryPolicyOf(undefined, 'kiot', services);
    expect(none).toMatchObject({ retry: 0, format: 'binary', timeoutMs: DEFAULT_ATTEMPT_TIMEOUT_MS });
    expect(none.deadLetterSink).toBeUndefined();
    expect(retryDelayMs(none, 1)).toBe(0);
    expect(deliveryPolicyOf({ timeout: 'PT2S', format: 'json' }, 'kiot', services)).toMatchObject({
      timeoutMs: 2_000,
      format: 'json',
    });
  });
});

describe('destinations and ROUTER_SERVICES', () => {
  const services = serviceMapSchema.parse(
    'mqtt-bridge=http://127.0.0.1:8090, other/dead-letters=http://127.0.0.1:9000/dl/\ntelemetry-ingest=http://127.0.0.1:8103',
  );

  it('parses name=url and namespace/name=url lists', () => {
    expect([...services.entries()]).toEqual([
      ['mqtt-bridge', 'http://127.0.0.1:8090'],
      ['other/dead-letters', 'http://127.0.0.1:9000/dl/'],
      ['telemetry-ingest', 'http://127.0.0.1:8103'],
    ]);
    expect(serviceMapSchema.parse('').size).toBe(0);
    expect(serviceMapSchema.safeParse('mqtt-bridge').success).toBe(false);
    expect(serviceMapSchema.safeParse('mqtt-bridge=mqtt://x:1883').success).toBe(false);
  });

  it('resolves refs to Services (v1 and Knative), with a relative uri appended, and absolute uris as they are', () => {
    const ref = (apiVersion: string, name: string, namespace?: string) => ({
      apiVersion,
      kind: 'Service',
      name,
      namespace,
    });
    expect(resolveDestination({ ref: ref('v1', 'mqtt-bridge') }, 'kiot', services)).toEqual({
      url: 'http://127.0.0.1:8090',
    });
    expect(
      resolveDestination(
        { ref: ref('serving.knative.dev/v1', 'telemetry-ingest'), uri: '/events/x' },
        'kiot',
        services,
      ),
    ).toEqual({
      url: 'http://127.0.0.1:8103/events/x',
    });
    expect(resolveDestination({ ref: ref('v1', 'dead-letters', 'other'), uri: 'sub' }, 'kiot', services)).toEqual({
      url: 'http://127.0.0.1:9000/dl/sub',
    });
    expect(resolveDestination({ ref: ref('v1', 'dead-letters') }, 'other', services)).toEqual({
      url: 'http://127.0.0.1:9000/dl/',
    });
    expect(resolveDestination({ uri: 'http://10.0.0.1:8080/x' }, 'kiot', services)).toEqual({
      url: 'http://10.0.0.1:8080/x',
    });
  });

  it('resolves a function’s cluster-local `<name>-events` Knative Service to its one local process, unless mapped itself', () => {
    const ref = (apiVersion: string, name: string) => ({ ref: { apiVersion, kind: 'Service', name } });
    expect(resolveDestination(ref('serving.knative.dev/v1', 'telemetry-ingest-events'), 'kiot', services)).toEqual({
      url: 'http://127.0.0.1:8103',
    });
    const own = serviceMapSchema.parse(
      'telemetry-ingest=http://127.0.0.1:1,telemetry-ingest-events=http://127.0.0.1:2',
    );
    expect(resolveDestination(ref('serving.knative.dev/v1', 'telemetry-ingest-events'), 'kiot', own)).toEqual({
      url: 'http://127.0.0.1:2',
    });
    // Only Knative Services are split that way; a plain Service must be mapped by its own name.
    expect(resolveDestination(ref('v1', 'telemetry-ingest-events'), 'kiot', services)).toEqual({
      unresolved: 'Service kiot/telemetry-ingest-events is not mapped in ROUTER_SERVICES',
    });
  });

  it('marks an unmapped Service unresolved and rejects what Knative rejects', () => {
    expect(resolveDestination({ ref: { apiVersion: 'v1', kind: 'Service', name: 'nope' } }, 'kiot', services)).toEqual({
      unresolved: 'Service kiot/nope is not mapped in ROUTER_SERVICES',
    });
    expect(() => resolveDestination({ uri: '/relative' }, 'kiot', services)).toThrow(UnsupportedDestinationError);
    expect(() =>
      resolveDestination(
        { ref: { apiVersion: 'v1', kind: 'Service', name: 'mqtt-bridge' }, uri: 'http://x/y' },
        'kiot',
        services,
      ),
    ).toThrow(/absolute uri/);
    expect(() =>
      resolveDestination(
        { ref: { apiVersion: 'messaging.knative.dev/v1', kind: 'Channel', name: 'c' } },
        'kiot',
        services,
      ),
    ).toThrow(/not supported locally/);
  });
});
