import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCsv } from './csv-parse.js';
import { type Harness, startHarness } from './harness.js';
import { type SampleDoc, storeDevices, storeSamples } from './telemetry-fixtures.js';

const DAY = 86_400_000;

const ping = (h: Harness, id: string, body: string, task?: string) =>
  fetch(h.base, {
    method: 'POST',
    headers: {
      'ce-specversion': '1.0',
      'ce-id': id,
      'ce-source': '/apis/v1/namespaces/kiot/pingsources/report-generation-reports',
      'ce-type': 'dev.knative.sources.ping',
      ...(task ? { 'ce-kiottask': task } : {}),
      ...(body === '' ? {} : { 'content-type': 'application/json' }),
    },
    body,
  });

describe('scheduled reports', { timeout: 120_000 }, () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness('rg-schedules');
    await storeDevices(h.mongo, [
      { id: 'sc-1', tags: ['lab'] },
      { id: 'sc-2', tags: ['lab'] },
    ]);
  });
  afterAll(async () => h?.close());

  it('generates the due ones on the reports tick and emits io.kiot.report.generated with their links', async () => {
    const created = await h.request('POST', '/report-schedules', {
      name: 'lab daily',
      cadence: 'daily',
      scope: { tag: 'lab' },
      metrics: ['temp'],
      interval: '1h',
      format: 'csv',
    });
    expect(created.status).toBe(201);
    const schedule = (await created.json()) as { id: string; nextRunAt: string };
    const due = Date.parse(schedule.nextRunAt);
    expect(due % DAY).toBe(0);

    // A day of samples in the period the first run reports on, then the clock moves past its end.
    const docs: SampleDoc[] = [];
    for (let ts = due - DAY; ts < due; ts += 10 * 60_000) {
      for (const deviceId of ['sc-1', 'sc-2'])
        docs.push({
          _id: `${deviceId}~${ts}`,
          deviceId,
          ts: new Date(ts),
          metrics: { temp: (ts / 60_000) % 40 },
          eventId: `e${ts}`,
          receivedAt: h.now(),
        });
    }
    await storeSamples(h.mongo, docs, h.now());
    expect((await ping(h, 'tick-0', '{"task":"reports"}', 'reports')).status).toBe(204);
    expect(h.sink.received).toHaveLength(0); // not due yet
    h.advance(due - h.now().getTime() + 60_000);

    expect((await ping(h, 'tick-1', '{"task":"reports"}', 'reports')).status).toBe(204);
    await h.sink.waitFor((received) => received.length >= 1);
    const event = h.sink.received[0]!.event!;
    expect(event.type).toBe('io.kiot.report.generated');
    expect(event.subject).toBe(schedule.id);
    const data = event.data as {
      reportId: string;
      from: string;
      to: string;
      format: string;
      links: { csv: string; json: string; html: string; preferred: string };
    };
    expect(event.id).toBe(`${data.reportId}.generated`);
    expect(data).toMatchObject({
      from: new Date(due - DAY).toISOString(),
      to: new Date(due).toISOString(),
      format: 'csv',
    });
    expect(data.links.preferred).toBe(data.links.csv);

    const csv = await h.request('GET', data.links.csv, undefined, h.auth.reader);
    expect(csv.status).toBe(200);
    const rows = parseCsv(await csv.text());
    expect(rows.filter((r) => r[0] === 'device')).toHaveLength(48); // 2 devices × 24 hours
    const html = await h.request('GET', data.links.html, undefined, h.auth.reader);
    expect(await html.text()).toContain('lab daily');

    const after = (await (await h.request('GET', `/report-schedules/${schedule.id}`)).json()) as {
      nextRunAt: string;
      lastReportId: string;
    };
    expect(after).toMatchObject({ nextRunAt: new Date(due + DAY).toISOString(), lastReportId: data.reportId });

    // A redelivered tick finds nothing due: no second report, no second event.
    expect((await ping(h, 'tick-1', '{"task":"reports"}', 'reports')).status).toBe(204);
    expect(h.sink.received).toHaveLength(1);
  });

  it('starts weekly schedules on Monday 00:00 UTC, and deletes schedules', async () => {
    const created = await h.request('POST', '/report-schedules', {
      cadence: 'weekly',
      scope: { fleet: true },
      metrics: ['temp'],
      format: 'html',
    });
    const schedule = (await created.json()) as { id: string; nextRunAt: string };
    expect(new Date(schedule.nextRunAt).getUTCDay()).toBe(1);
    expect(Date.parse(schedule.nextRunAt) % DAY).toBe(0);
    expect((await h.request('DELETE', `/report-schedules/${schedule.id}`)).status).toBe(204);
    expect((await h.request('GET', `/report-schedules/${schedule.id}`)).status).toBe(404);
  });

  it('lists schedules and reports newest first, page by page', async () => {
    const made: string[] = [];
    for (const cadence of ['daily', 'weekly', 'daily']) {
      const created = await h.request('POST', '/report-schedules', {
        cadence,
        scope: { fleet: true },
        metrics: ['temp'],
      });
      made.push(((await created.json()) as { id: string }).id);
      h.advance(1_000);
    }
    type Page = { items: { id: string; createdAt: string }[]; nextCursor: string | null };
    const seen: Page['items'] = [];
    let cursor: string | null = null;
    do {
      const answer = await h.request('GET', `/report-schedules?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(answer.status).toBe(200);
      const page = (await answer.json()) as Page;
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items);
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen.slice(0, 3).map((s) => s.id)).toEqual([...made].reverse());
    expect(new Set(seen.map((s) => s.id)).size).toBe(seen.length);

    const reports = (await (await h.request('GET', '/reports?limit=1', undefined, h.auth.reader)).json()) as Page;
    expect(reports.items).toHaveLength(1);
    expect(reports.items[0]).toMatchObject({ links: { html: expect.stringContaining(reports.items[0]!.id) } });
    expect((await h.request('GET', '/reports?cursor=nonsense')).status).toBe(400);
  });

  it('refuses bad schedules and pings without a known task', async () => {
    const bad = await h.request('POST', '/report-schedules', {
      cadence: 'hourly',
      scope: { fleet: true },
      metrics: ['temp'],
    });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({
      error: { code: 'invalid_input', details: [expect.objectContaining({ path: 'cadence' })] },
    });
    const unknown = await ping(h, 'tick-x', '{}');
    expect(unknown.status).toBe(400);
    expect(await unknown.json()).toMatchObject({ error: { code: 'unknown_task' } });
    // The extension alone names the task as well (a PingSource without data).
    const bare = await ping(h, 'tick-y', '', 'rollups');
    expect(bare.status, await bare.clone().text()).toBe(204);
  });
});
