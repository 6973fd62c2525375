import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCsv } from './csv-parse.js';
import { type Harness, startHarness } from './harness.js';
import { quarter, random, type SampleDoc, storeDevices, storeSamples } from './telemetry-fixtures.js';

const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const D0 = Date.UTC(2026, 2, 10);
const RANGE = { from: new Date(D0).toISOString(), to: new Date(D0 + 2 * DAY).toISOString() };

interface ReportJson {
  id: string;
  interval: string;
  sources: string[];
  aggregations: string[];
  from: string;
  to: string;
  devices: string[];
  summary: {
    metrics: Record<string, { count: number; min: number | null; max: number | null; avg: number | null }>;
    devices: number;
    devicesReporting: number;
    onlineRatio: number;
    alerts: { raised: number };
    commandsByStatus: Record<string, number>;
  };
  links: { self: string; csv: string; html: string };
  series: {
    fleet: { metric: string; points: Record<string, number | string>[] }[];
    devices: { deviceId: string; metric: string; points: Record<string, number | string>[] }[];
  };
}

// Generous per-test time: the shared test server is slow under parallel load; correctness, not speed, is tested.
describe('on-demand reports over real HTTP', { timeout: 120_000 }, () => {
  let h: Harness;
  let stored: SampleDoc[] = [];
  const rand = random(7);

  beforeAll(async () => {
    h = await startHarness('rg-reports');
    await storeDevices(h.mongo, [
      { id: 'rp-1', type: 'thermo', tags: ['north'] },
      { id: 'rp-2', type: 'thermo', tags: ['south'] },
      { id: 'rp-3', type: 'meter', tags: ['north'] },
      { id: 'rp-quiet', type: 'meter' },
    ]);
    const docs: SampleDoc[] = [];
    for (const deviceId of ['rp-1', 'rp-2', 'rp-3']) {
      for (let ts = D0; ts < D0 + 2 * DAY; ts += MIN) {
        if (deviceId === 'rp-3' && ts >= D0 + 10 * HOUR && ts < D0 + 20 * HOUR) continue; // offline ten hours
        docs.push({
          _id: `${deviceId}~${ts}`,
          deviceId,
          ts: new Date(ts),
          metrics: { temp: quarter(rand, 0, 30), power: quarter(rand, 100, 200) },
          eventId: `e${ts}`,
          receivedAt: h.now(),
          msgId: String(ts),
        });
      }
    }
    stored = await storeSamples(h.mongo, docs, h.now());
    const db = await h.mongo.db();
    await db.collection('alerts').insertMany([
      {
        _id: 'a1' as never,
        deviceId: 'rp-1',
        ruleId: 'r',
        metric: 'temp',
        severity: 'critical',
        status: 'cleared',
        raisedAt: new Date(D0 + HOUR),
      },
      {
        _id: 'a2' as never,
        deviceId: 'rp-2',
        ruleId: 'r',
        metric: 'temp',
        severity: 'warning',
        status: 'active',
        raisedAt: new Date(D0 + DAY),
      },
      {
        _id: 'a3' as never,
        deviceId: 'rp-2',
        ruleId: 'r',
        metric: 'temp',
        severity: 'warning',
        status: 'active',
        raisedAt: new Date(D0 - DAY),
      }, // outside
    ]);
    await db.collection('commands').insertMany([
      { _id: 'c1' as never, deviceId: 'rp-1', name: 'reboot', status: 'SUCCEEDED', createdAt: new Date(D0 + 2 * HOUR) },
      { _id: 'c2' as never, deviceId: 'rp-1', name: 'reboot', status: 'FAILED', createdAt: new Date(D0 + 3 * HOUR) },
      { _id: 'c3' as never, deviceId: 'rp-3', name: 'reboot', status: 'SUCCEEDED', createdAt: new Date(D0 + 4 * HOUR) },
    ]);
    expect((await h.request('POST', '/rollups/run')).status).toBe(200);
  });
  afterAll(async () => h?.close());

  async function create(body: Record<string, unknown>): Promise<ReportJson> {
    const response = await h.request('POST', '/reports', body);
    expect(response.status, await response.clone().text()).toBe(201);
    const header = (await response.json()) as ReportJson;
    expect(response.headers.get('location')).toBe(header.links.self);
    const full = await h.request('GET', `/reports/${header.id}`);
    expect(full.status).toBe(200);
    return (await full.json()) as ReportJson;
  }

  it('builds per-device and fleet series from rollups with the same numbers as from raw samples', async () => {
    const hourly = await create({
      scope: { deviceIds: ['rp-1', 'rp-2', 'rp-3'] },
      ...RANGE,
      metrics: ['temp', 'power'],
      interval: '1h',
      aggregations: ['count', 'min', 'max', 'avg', 'sum', 'first', 'last'],
    });
    expect(hourly.sources).toEqual(['hour']);
    expect(hourly.series.fleet.map((s) => s.metric)).toEqual(['temp', 'power']);
    expect(hourly.series.fleet[0]!.points).toHaveLength(48);
    expect(hourly.series.devices.find((s) => s.deviceId === 'rp-3' && s.metric === 'temp')!.points).toHaveLength(38);

    const fiveMinutes = await create({
      scope: { deviceIds: ['rp-1', 'rp-2', 'rp-3'] },
      ...RANGE,
      metrics: ['temp', 'power'],
      interval: '5m',
    });
    expect(fiveMinutes.sources).toEqual(['raw']);
    expect(fiveMinutes.summary.metrics).toEqual(hourly.summary.metrics);

    const temps = stored.map((d) => d.metrics.temp!);
    expect(hourly.summary.metrics.temp).toEqual({
      count: temps.length,
      min: Math.min(...temps),
      max: Math.max(...temps),
      avg: temps.reduce((a, b) => a + b, 0) / temps.length,
    });
    expect(hourly.summary).toMatchObject({
      devices: 3,
      devicesReporting: 3,
      alerts: { raised: 2 },
      commandsByStatus: { SUCCEEDED: 2, FAILED: 1 },
    });
    expect(hourly.summary.onlineRatio).toBeCloseTo((3 * 48 - 10) / (3 * 48), 12);
  });

  it('streams a CSV (RFC 4180) that parses back to exactly the JSON report numbers', async () => {
    const report = await create({
      scope: { type: 'thermo' },
      ...RANGE,
      metrics: ['temp', 'power'],
      interval: '1h',
      aggregations: ['count', 'sum', 'min', 'max', 'avg', 'first', 'last'],
    });
    const response = await h.request('GET', `/reports/${report.id}?format=csv`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/csv/);
    expect(response.headers.get('transfer-encoding')).toBe('chunked'); // streamed: no Content-Length known up front
    const [header, ...rows] = parseCsv(await response.text());
    expect(header).toEqual([
      'series',
      'device_id',
      'metric',
      'bucket_start',
      'bucket_end',
      'count',
      'sum',
      'min',
      'max',
      'avg',
      'first',
      'last',
    ]);

    const fromJson = new Map<string, Record<string, number>>();
    for (const s of report.series.fleet)
      for (const p of s.points) fromJson.set(`fleet||${s.metric}|${p.t}`, p as Record<string, number>);
    for (const s of report.series.devices)
      for (const p of s.points) fromJson.set(`device|${s.deviceId}|${s.metric}|${p.t}`, p as Record<string, number>);
    expect(rows).toHaveLength(fromJson.size);
    for (const row of rows) {
      const [series, deviceId, metric, start, end, ...values] = row;
      const point = fromJson.get(`${series}|${deviceId}|${metric}|${start}`);
      expect(point, `row ${row.join(',')}`).toBeDefined();
      expect(Date.parse(end!) - Date.parse(start!)).toBe(HOUR);
      for (const [i, aggregation] of header!.slice(5).entries()) expect(Number(values[i])).toBe(point![aggregation]);
    }
    const byAccept = await h.request('GET', `/reports/${report.id}`, undefined, {
      ...h.auth.reader,
      accept: 'text/csv',
    });
    expect(byAccept.headers.get('content-type')).toMatch(/^text\/csv/);
    expect(parseCsv(await byAccept.text())).toHaveLength(rows.length + 1);
  });

  it('resolves scopes by tag and the whole fleet, and picks an interval when none is given', async () => {
    const north = await create({ scope: { tag: 'north' }, ...RANGE, metrics: ['temp'] });
    expect(north.devices).toEqual(['rp-1', 'rp-3']);
    expect(north.interval).toBe('5m'); // 2 days: 2,880 one-minute buckets exceed 1,000 points per series
    const fleet = await create({
      scope: { fleet: true },
      from: RANGE.from,
      to: new Date(D0 + 6 * HOUR).toISOString(),
      metrics: ['temp'],
    });
    expect(fleet.devices).toEqual(['rp-1', 'rp-2', 'rp-3', 'rp-quiet']);
    expect(fleet.interval).toBe('1m');
    const month = await create({
      scope: { deviceIds: ['rp-1'] },
      from: RANGE.from,
      to: new Date(D0 + 30 * DAY).toISOString(),
      metrics: ['temp'],
    });
    expect(month.interval).toBe('1h');
    const years = await create({
      scope: { deviceIds: ['rp-1'] },
      from: '2024-01-01T00:00:00Z',
      to: RANGE.to,
      metrics: ['temp'],
    });
    expect(years.interval).toBe('1d');
    expect(years.summary.metrics.temp!.count).toBe(stored.filter((d) => d.deviceId === 'rp-1').length);
    expect(fleet.summary.devicesReporting).toBe(3);
  });

  it('answers an empty range, unknown devices, bad intervals and unknown ids with clear problems', async () => {
    const cases: [Record<string, unknown>, number, string][] = [
      [{ scope: { deviceIds: ['rp-1'] }, from: RANGE.from, to: RANGE.from, metrics: ['temp'] }, 400, 'invalid_input'],
      [{ scope: { deviceIds: ['rp-1', 'nope'] }, ...RANGE, metrics: ['temp'] }, 422, 'unknown_device'],
      [{ scope: { deviceIds: ['rp-1'] }, ...RANGE, metrics: ['temp'], interval: '7m' }, 400, 'invalid_input'],
      [
        {
          scope: { deviceIds: ['rp-1'] },
          from: RANGE.from,
          to: new Date(D0 + 8 * DAY).toISOString(),
          metrics: ['temp'],
          interval: 'raw',
        },
        422,
        'range_too_long_for_raw',
      ],
      [
        {
          scope: { deviceIds: ['rp-1'] },
          from: '2000-01-01T00:00:00Z',
          to: RANGE.to,
          metrics: ['temp'],
          interval: '1m',
        },
        422,
        'report_too_large',
      ],
      [{ scope: {}, ...RANGE, metrics: ['temp'] }, 400, 'invalid_input'],
    ];
    for (const [body, status, code] of cases) {
      const response = await h.request('POST', '/reports', body);
      expect(response.status, JSON.stringify(body)).toBe(status);
      expect(await response.json()).toMatchObject({ error: { code, message: expect.any(String) } });
    }
    const missing = await h.request('GET', '/reports/r_missing');
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ error: { code: 'unknown_report' } });
    const badFormat = await h.request('GET', '/reports/r_missing?format=pdf');
    expect(badFormat.status).toBe(400);

    const empty = await create({ scope: { deviceIds: ['rp-quiet'] }, ...RANGE, metrics: ['temp'] });
    expect(empty.series.devices).toEqual([]);
    expect(empty.series.fleet).toEqual([{ metric: 'temp', points: [] }]);
    expect(empty.summary).toMatchObject({
      devicesReporting: 0,
      onlineRatio: 0,
      metrics: { temp: { count: 0, min: null, max: null, avg: null } },
    });
    const csv = parseCsv(await (await h.request('GET', `/reports/${empty.id}?format=csv`)).text());
    expect(csv).toHaveLength(1);
  });

  it('needs an API key with the reports scope', async () => {
    expect((await h.request('GET', '/reports/x', undefined, {})).status).toBe(401);
    const forbidden = await h.request(
      'POST',
      '/reports',
      { scope: { fleet: true }, ...RANGE, metrics: ['temp'] },
      h.auth.reader,
    );
    expect(forbidden.status).toBe(403);
  });

  it('serves a device series of at most N points with min/max per bucket', async () => {
    const response = await h.request(
      'GET',
      `/devices/rp-1/series?metric=temp&from=${RANGE.from}&to=${RANGE.to}&points=50`,
      undefined,
      h.auth.reader,
    );
    expect(response.status).toBe(200);
    const series = (await response.json()) as {
      bucketMs: number;
      sources: string[];
      points: { min: number; max: number; count: number }[];
    };
    expect(series.points.length).toBeLessThanOrEqual(50);
    expect(series.bucketMs).toBe(HOUR);
    expect(series.sources).toEqual(['hour']);
    const temps = stored.filter((d) => d.deviceId === 'rp-1').map((d) => d.metrics.temp!);
    expect(Math.max(...series.points.map((p) => p.max))).toBe(Math.max(...temps));
    expect(Math.min(...series.points.map((p) => p.min))).toBe(Math.min(...temps));
    expect(series.points.reduce((n, p) => n + p.count, 0)).toBe(temps.length);

    const fine = (await (
      await h.request(
        'GET',
        `/devices/rp-1/series?metric=temp&from=${RANGE.from}&to=${new Date(D0 + HOUR).toISOString()}&points=1000`,
      )
    ).json()) as { points: unknown[]; sources: string[] };
    expect(fine.points).toHaveLength(60);
    expect(fine.sources).toEqual(['raw']);

    const unknown = await h.request('GET', `/devices/ghost/series?metric=temp&from=${RANGE.from}&to=${RANGE.to}`);
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ error: { code: 'unknown_device' } });
    const none = (await (
      await h.request('GET', `/devices/rp-quiet/series?metric=temp&from=${RANGE.from}&to=${RANGE.to}`)
    ).json()) as { points: unknown[] };
    expect(none.points).toEqual([]);
    const bad = await h.request('GET', `/devices/rp-1/series?metric=temp&from=${RANGE.to}&to=${RANGE.from}`);
    expect(bad.status).toBe(400);
  });
});
