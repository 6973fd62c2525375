import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisKeys } from '../../../functions/telemetry-ingest/redis-keys.js';
import { uniqueName } from '../../support/services.js';
import { type Harness, startHarness, storedSamples, TYPES } from './harness.js';

// Every refusal is a non-retryable 4xx (dead-letter sink) AND a notice on devices/{id}/errors.
describe('telemetry-ingest: refusing telemetry visibly', () => {
  let h: Harness;
  const device = uniqueName('dev');
  const typed = uniqueName('typed');
  const day = 86_400_000;

  beforeAll(async () => {
    h = await startHarness({
      TELEMETRY_MAX_SAMPLES_PER_MESSAGE: '5',
      TELEMETRY_MAX_METRICS_PER_SAMPLE: '3',
      TELEMETRY_RETENTION_DAYS: '7',
    });
    await h.addDevice(device);
    await h.addDeviceType('thermo', {
      metrics: { temp: { unit: '°C', min: -40, max: 85 } },
      allowUnknownMetrics: false,
    });
    await h.addDevice(typed, { type: 'thermo' });
  });
  afterAll(() => h.close());

  const cases: [string, string, unknown, string][] = [
    ['an array of numbers', 'dev', [1, 2], 'invalid_payload'],
    ['metrics missing', 'dev', { ts: Date.now() }, 'invalid_payload'],
    ['a misspelt field', 'dev', { metric: { temp: 1 } }, 'invalid_payload'],
    ['an unknown top-level field', 'dev', { metrics: { temp: 1 }, extra: true }, 'invalid_payload'],
    ['a string value', 'dev', { metrics: { temp: '21' } }, 'invalid_payload'],
    ['a nested value', 'dev', { metrics: { temp: { v: 1 } } }, 'invalid_payload'],
    ['a bad metric name', 'dev', { metrics: { '1temp': 1 } }, 'invalid_payload'],
    ['a metric name with a dot', 'dev', { metrics: { 'a.b': 1 } }, 'invalid_payload'],
    ['no metrics', 'dev', { metrics: {} }, 'invalid_payload'],
    ['too many metrics', 'dev', { metrics: { a: 1, b: 2, c: 3, d: 4 } }, 'invalid_payload'],
    ['an empty batch', 'dev', [], 'invalid_payload'],
    ['too many samples', 'dev', Array.from({ length: 6 }, () => ({ metrics: { a: 1 } })), 'too_many_samples'],
    ['a bad timestamp', 'dev', { ts: 'yesterday', metrics: { a: 1 } }, 'invalid_payload'],
    [
      'a sample older than the retention',
      'dev',
      { ts: Date.now() - 8 * day, metrics: { a: 1 } },
      'timestamp_out_of_range',
    ],
    [
      'a sample an hour in the future',
      'dev',
      { ts: Date.now() + 3_600_000, metrics: { a: 1 } },
      'timestamp_out_of_range',
    ],
    ['one bad sample in a batch', 'dev', [{ metrics: { a: 1 } }, { metrics: { a: 'x' } }], 'invalid_payload'],
    ['a value above the type range', 'typed', { metrics: { temp: 120 } }, 'schema_violation'],
    ['a value below the type range', 'typed', { metrics: { temp: -41 } }, 'schema_violation'],
    ['a metric the type does not declare', 'typed', { metrics: { temp: 20, volts: 3 } }, 'schema_violation'],
  ];

  it.each(cases)('refuses %s with 400 and tells the device', async (_name, which, payload, code) => {
    const target = which === 'typed' ? typed : device;
    const id = uniqueName('bad');
    const answer = await h.send(TYPES.telemetry, target, payload, { id });
    expect(answer.status).toBe(400);
    expect(await answer.json()).toMatchObject({ error: { code } });
    const notice = h.sink.received.find((r) => r.event?.id === `rejected:${id}`)?.event;
    expect(notice).toMatchObject({ type: 'io.kiot.mqtt.publish', subject: target });
    expect(notice?.data).toMatchObject({
      topic: `devices/${target}/errors`,
      qos: 1,
      retain: false,
      payload: { code, eventId: id, message: expect.any(String) },
    });
    expect((await storedSamples(h, target)).filter((doc) => doc.eventId === id)).toHaveLength(0);
  });

  it('lists every issue of a message in the notice details', async () => {
    const id = uniqueName('bad');
    await h.send(TYPES.telemetry, typed, [{ metrics: { temp: 100 } }, { metrics: { temp: -50, x: 1 } }], { id });
    const notice = h.notices(typed).find((n) => n.eventId === id);
    expect(notice?.details).toEqual([
      expect.objectContaining({ path: '0.metrics.temp', code: 'above_max' }),
      expect.objectContaining({ path: '1.metrics.temp', code: 'below_min' }),
      expect.objectContaining({ path: '1.metrics.x', code: 'unknown_metric' }),
    ]);
  });

  it('accepts what the type declares, within range', async () => {
    expect((await h.send(TYPES.telemetry, typed, { metrics: { temp: 85 } })).status).toBe(204);
  });

  it('refuses an unknown and a disabled device with 422 and tells them', async () => {
    const ghost = uniqueName('ghost');
    const off = uniqueName('off');
    await h.addDevice(off, { status: 'disabled' });
    for (const [target, code] of [
      [ghost, 'unknown_device'],
      [off, 'device_disabled'],
    ] as const) {
      const id = uniqueName('ev');
      const answer = await h.send(TYPES.telemetry, target, { metrics: { a: 1 } }, { id });
      expect(answer.status).toBe(422);
      expect(await answer.json()).toMatchObject({ error: { code } });
      expect(h.notices(target)).toContainEqual(expect.objectContaining({ code, eventId: id }));
    }
  });

  it('refuses an event without a device subject with 400', async () => {
    const answer = await h.send(TYPES.telemetry, 'bad/subject', { metrics: { a: 1 } });
    expect(answer.status).toBe(400);
  });
});

describe('telemetry-ingest: per-device rate limit', () => {
  let h: Harness;
  const device = uniqueName('fast');

  beforeAll(async () => {
    // 1 message per ~17 minutes after a burst of 3: the excess of a quick run is certain, not timing-bound.
    h = await startHarness({
      RATE_LIMIT_PER_SECOND: '0.001',
      RATE_LIMIT_BURST: '3',
      RATE_LIMIT_NOTICE_INTERVAL_MS: '3600000',
    });
    await h.addDevice(device);
  });
  afterAll(() => h.close());

  it('refuses the excess for good (422 rate_limited), tells the device once, counts every one', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 6; i += 1) statuses.push((await h.send(TYPES.telemetry, device, { metrics: { n: i } })).status);
    expect(statuses).toEqual([204, 204, 204, 422, 422, 422]);
    expect(await storedSamples(h, device)).toHaveLength(3);
    expect(h.notices(device).filter((n) => n.code === 'rate_limited')).toHaveLength(1);
    const metrics = await (await fetch(`${h.base}/metrics`)).text();
    expect(metrics).toContain('kiot_telemetry_rate_limited_total 3');
    expect(metrics).toContain('kiot_telemetry_rejected_total{code="rate_limited"} 3');
  });

  it('judges each message at its receive time: a backlog that came within the rate is stored however late it arrives', async () => {
    const late = uniqueName('late');
    await h.addDevice(late);
    // One message per 1,000 s (the device's rate) over the last 100 minutes, all delivered now (an outage's
    // backlog, a replay after a crash): each was within the rate when it came.
    const start = Date.now() - 6_000_000;
    const statuses: number[] = [];
    for (let i = 0; i < 6; i += 1) {
      const time = new Date(start + i * 1_000_000).toISOString();
      statuses.push((await h.send(TYPES.telemetry, late, { metrics: { n: i } }, { time })).status);
    }
    expect(statuses).toEqual([204, 204, 204, 204, 204, 204]);
    // Now it sends faster than its rate: the burst (3), then refusals, as for any device.
    for (let i = 0; i < 4; i += 1) statuses.push((await h.send(TYPES.telemetry, late, { metrics: { now: i } })).status);
    expect(statuses.slice(6)).toEqual([204, 204, 204, 422]);
    expect(await storedSamples(h, late)).toHaveLength(9);
  });

  it('keeps the bucket in the presence hash, and ignores the bucket keys of earlier releases', async () => {
    const upgraded = uniqueName('upgraded');
    await h.addDevice(upgraded);
    const keys = redisKeys(h.config.REDIS_PREFIX);
    const client = await h.redis.client();
    // Empty buckets as earlier releases left them (a string, and the hash before it): no longer read, so the
    // device's bucket starts full (burst 3) once, and the old keys are left to expire.
    const old = `${h.config.REDIS_PREFIX}:{${upgraded}}:rate`;
    await client.set(old, `0 ${Date.now()} 0`, 'PX', 60_000);
    const statuses: number[] = [];
    for (let i = 0; i < 4; i += 1)
      statuses.push((await h.send(TYPES.telemetry, upgraded, { metrics: { n: i } })).status);
    expect(statuses).toEqual([204, 204, 204, 422]);
    expect(await client.get(old)).toMatch(/^0 /);
    const hash = await client.hgetall(keys.presence(upgraded));
    expect(Number(hash.tokens)).toBeLessThan(1);
    expect(hash.status).toBe('online');
    // The presence hash keeps presence's TTL (days), not the bucket's seconds.
    expect(await client.ttl(keys.presence(upgraded))).toBeGreaterThan(3600);
  });

  it('marks an unregistered device nothing but its bucket, which goes with it', async () => {
    const stray = uniqueName('stray');
    const keys = redisKeys(h.config.REDIS_PREFIX);
    const client = await h.redis.client();
    expect((await h.send(TYPES.telemetry, stray, { metrics: { n: 1 } })).status).toBe(422);
    const hash = await client.hgetall(keys.presence(stray));
    expect(hash.status).toBeUndefined();
    expect(Number(hash.tokens)).toBe(2);
    // The bucket's idle time: burst / rate + 1 s (3 / 0.001 + 1 = 3,001 s here), not presence's days.
    const ttl = await client.pttl(keys.presence(stray));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(3_001_000);
  });

  it('does not spend the budget of another device', async () => {
    const calm = uniqueName('calm');
    await h.addDevice(calm);
    expect((await h.send(TYPES.telemetry, calm, { metrics: { n: 1 } })).status).toBe(204);
  });
});
