import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueName } from '../../support/services.js';
import { type Harness, startHarness, storedSamples, TYPES } from './harness.js';

// Alerts transition once per crossing, not once per sample, with hysteresis and a consecutive count.
describe('telemetry-ingest: alerts', () => {
  let h: Harness;
  const device = uniqueName('boiler');

  beforeAll(async () => {
    h = await startHarness({ ALERT_RULE_CACHE_TTL_MS: '0' });
    await h.addDevice(device, { type: uniqueName('boiler-type') });
  });
  afterAll(() => h.close());

  const api = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
    fetch(`${h.base}${path}`, {
      method,
      headers: {
        authorization: h.apiKey,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });

  it('manages rules over HTTP with validation and versions', async () => {
    expect((await fetch(`${h.base}/alert-rules`)).status).toBe(401);
    const invalid = await api('POST', '/alert-rules', {
      metric: 'temp',
      comparison: '>',
      threshold: 5,
      clearThreshold: 9,
      deviceId: device,
    });
    expect(invalid.status).toBe(400);
    expect((await api('POST', '/alert-rules', { metric: 'temp', comparison: '>', threshold: 5 })).status).toBe(400);

    const created = await api('POST', '/alert-rules', {
      deviceId: device,
      metric: 'temp',
      comparison: '>',
      threshold: 80,
    });
    expect(created.status).toBe(201);
    const rule = (await created.json()) as any;
    expect(rule).toMatchObject({ id: expect.any(String), version: 1, forSamples: 1, enabled: true });
    expect((await api('GET', `/alert-rules/${rule.id}`)).headers.get('etag')).toBe('"1"');
    const replaced = await api(
      'PUT',
      `/alert-rules/${rule.id}`,
      { deviceId: device, metric: 'temp', comparison: '>', threshold: 90 },
      { 'if-match': '"1"' },
    );
    expect(await replaced.json()).toMatchObject({ version: 2, threshold: 90 });
    const stale = await api(
      'PUT',
      `/alert-rules/${rule.id}`,
      { deviceId: device, metric: 'temp', comparison: '>', threshold: 95 },
      { 'if-match': '"1"' },
    );
    expect(stale.status).toBe(412);
    expect(((await (await api('GET', `/alert-rules?deviceId=${device}`)).json()) as any).items).toHaveLength(1);
    expect((await api('DELETE', `/alert-rules/${rule.id}`)).status).toBe(204);
    expect((await api('GET', `/alert-rules/${rule.id}`)).status).toBe(404);
  });

  it('raises once after 2 consecutive breaches and clears once below the clear threshold', async () => {
    const created = await api('POST', '/alert-rules', {
      deviceId: device,
      metric: 'temp',
      comparison: '>',
      threshold: 80,
      clearThreshold: 70,
      forSamples: 2,
      severity: 'critical',
    });
    const rule = (await created.json()) as any;
    const start = Date.now() - 60_000;
    // 85 alone is not enough (forSamples 2); 85, 90 raise; 95, 75, 72 (above the clear threshold) stay;
    // 60, 65 clear (two in a row, as for raising).
    const values = [85, 60, 85, 90, 95, 75, 72, 60, 65];
    for (const [i, temp] of values.entries()) {
      expect((await h.send(TYPES.telemetry, device, { ts: start + i * 1_000, metrics: { temp } })).status).toBe(204);
    }
    const transitions = () =>
      h.sink.received
        .map((r) => r.event)
        .filter((e) => e?.type === 'io.kiot.alert.raised' || e?.type === 'io.kiot.alert.cleared');
    await h.sink.waitFor(() => transitions().length >= 2);
    const [raised, cleared] = transitions();
    expect(transitions()).toHaveLength(2);
    expect(raised).toMatchObject({
      type: 'io.kiot.alert.raised',
      subject: device,
      data: { ruleId: rule.id, value: 90, severity: 'critical' },
    });
    expect(cleared).toMatchObject({
      type: 'io.kiot.alert.cleared',
      subject: device,
      data: { ruleId: rule.id, value: 65 },
    });

    // A redelivered message changes nothing.
    const again = uniqueName('ev');
    await h.send(TYPES.telemetry, device, { ts: start + 20_000, metrics: { temp: 99 } }, { id: again });
    await h.send(TYPES.telemetry, device, { ts: start + 20_000, metrics: { temp: 99 } }, { id: again });
    expect(transitions()).toHaveLength(2);

    const alerts = (await (await api('GET', `/alerts?deviceId=${device}&status=cleared`)).json()) as any;
    expect(alerts.items).toEqual([
      expect.objectContaining({
        ruleId: rule.id,
        status: 'cleared',
        raisedValue: 90,
        clearedValue: 65,
        raisedAt: new Date(start + 3_000).toISOString(),
      }),
    ]);
  });

  it('raises once across a batch and for concurrent messages of one device', async () => {
    const other = uniqueName('boiler');
    const type = uniqueName('type');
    await h.addDevice(other, { type });
    const rule = (await (
      await api('POST', '/alert-rules', { deviceType: type, metric: 'p', comparison: '>=', threshold: 10 })
    ).json()) as any;
    const base = Date.now() - 30_000;
    await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        h.send(TYPES.telemetry, other, [
          { ts: base + i * 2, metrics: { p: 10 + i } },
          { ts: base + i * 2 + 1, metrics: { p: 20 } },
        ]),
      ),
    );
    const raised = () =>
      h.sink.received.filter((r) => r.event?.type === 'io.kiot.alert.raised' && r.event.subject === other);
    await h.sink.waitFor(() => raised().length >= 1);
    expect(raised()).toHaveLength(1);
    const active = (await (await api('GET', `/alerts?ruleId=${rule.id}&status=active`)).json()) as any;
    expect(active.items).toHaveLength(1);
  });

  it('raises the alert of a message whose first delivery stored it and then failed: the redelivery is a duplicate and still raises it, once', async () => {
    const flaky = uniqueName('boiler');
    await h.addDevice(flaky);
    const rule = (await (
      await api('POST', '/alert-rules', { deviceId: flaky, metric: 'temp', comparison: '>', threshold: 50 })
    ).json()) as any;
    const raised = () =>
      h.sink.received.filter(
        (r) => r.event?.type === 'io.kiot.alert.raised' && r.event.subject === flaky && r.event.id?.startsWith(rule.id),
      );
    const id = uniqueName('ev');
    const data = { ts: Date.now() - 5_000, metrics: { temp: 80 } };
    // The sink refuses the alert: the first delivery stored the sample, evaluated it, and answers 5xx.
    h.sink.respond = (request) => (request.event?.type === 'io.kiot.alert.raised' ? { status: 503 } : { status: 202 });
    try {
      expect((await h.send(TYPES.telemetry, flaky, data, { id })).status).toBeGreaterThanOrEqual(500);
    } finally {
      h.sink.respond = () => ({ status: 202 });
    }
    expect(await storedSamples(h, flaky)).toHaveLength(1);
    const refused = raised().length;
    expect(refused).toBeGreaterThan(0);

    // The redelivery finds its sample stored (a duplicate) and still publishes the alert; later ones add nothing.
    expect((await h.send(TYPES.telemetry, flaky, data, { id })).status).toBe(204);
    expect((await h.send(TYPES.telemetry, flaky, data, { id })).status).toBe(204);
    expect(raised()).toHaveLength(refused + 1);
    const active = (await (await api('GET', `/alerts?ruleId=${rule.id}&status=active`)).json()) as any;
    expect(active.items).toEqual([expect.objectContaining({ deviceId: flaky, raisedValue: 80 })]);
    expect(await storedSamples(h, flaky)).toHaveLength(1);
    // Presence ran for the duplicate too.
    const state = (await (await h.get(`/devices/${flaky}/state`)).json()) as { presence: { status: string } };
    expect(state.presence.status).toBe('online');
  });
});
