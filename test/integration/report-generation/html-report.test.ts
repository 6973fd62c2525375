import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, type TestBrowser } from '../../support/chromium.js';
import { type Harness, startHarness } from './harness.js';
import { quarter, random, type SampleDoc, storeDevices, storeSamples } from './telemetry-fixtures.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const ARTIFACTS = join(ROOT, 'test-artifacts', 'report-generation');
const HOUR = 3_600_000;
const D0 = Date.UTC(2026, 4, 4);

describe('the HTML report in real headless Chromium', { timeout: 120_000 }, () => {
  let h: Harness;
  let browser: BrowserContext;
  let chromiumBrowser: TestBrowser;

  beforeAll(async () => {
    h = await startHarness('rg-html');
    await storeDevices(h.mongo, [
      { id: 'ht-1', type: 'boiler' },
      { id: 'ht-2', type: 'boiler' },
      { id: 'ht-3', type: 'boiler' },
    ]);
    const rand = random(3);
    const docs: SampleDoc[] = [];
    for (const deviceId of ['ht-1', 'ht-2']) {
      for (let ts = D0; ts < D0 + 3 * 24 * HOUR; ts += 5 * 60_000) {
        if (ts > D0 + 30 * HOUR && ts < D0 + 36 * HOUR) continue; // a gap the chart must show
        const wave = 60 + 15 * Math.sin((ts - D0) / (6 * HOUR));
        docs.push({
          _id: `${deviceId}~${ts}`,
          deviceId,
          ts: new Date(ts),
          metrics: { temp: quarter(rand, wave - 3, wave + 3), pressure: quarter(rand, 1, 3) },
          eventId: `e${ts}`,
          receivedAt: h.now(),
        });
      }
    }
    await storeSamples(h.mongo, docs, h.now());
    chromiumBrowser = await launchChromium();
    browser = chromiumBrowser.context;
  }, 60_000);
  afterAll(async () => {
    await chromiumBrowser?.close();
    await h?.close();
  });

  it('renders SVG charts with axis labels and a fleet summary, without console errors or requests elsewhere', async () => {
    const created = await h.request('POST', '/reports', {
      scope: { type: 'boiler' },
      from: new Date(D0).toISOString(),
      to: new Date(D0 + 3 * 24 * HOUR).toISOString(),
      metrics: ['temp', 'pressure'],
      interval: '1h',
      title: 'Boilers <weekly> & "friends"',
    });
    expect(created.status).toBe(201);
    const { links } = (await created.json()) as { links: { html: string } };

    const page = await browser.newPage();
    const problems: string[] = [];
    const requests: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error' || message.type() === 'warning')
        problems.push(`${message.type()}: ${message.text()}`);
    });
    page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
    page.on('request', (request) => requests.push(request.url()));
    await page.setExtraHTTPHeaders(h.auth.reader);
    const response = await page.goto(`${h.base}${links.html}`, { waitUntil: 'load' });
    expect(response?.status()).toBe(200);
    expect(response?.headers()['content-type']).toMatch(/^text\/html/);

    expect(await page.title()).toBe('Boilers <weekly> & "friends"');
    const charts = page.locator('svg.chart');
    expect(await charts.count()).toBe(2);
    for (let i = 0; i < 2; i += 1) {
      const chart = charts.nth(i);
      const line = await chart.locator('path.line').getAttribute('d');
      const band = await chart.locator('path.band').getAttribute('d');
      expect(line).toMatch(/^M[\d.]+,[\d.]+(L[\d.]+,[\d.]+)+M/); // two runs: the gap breaks the line
      expect(band).toMatch(/Z$/);
      const box = await chart.locator('path.line').boundingBox();
      expect(box!.width).toBeGreaterThan(300);
      expect(box!.height).toBeGreaterThan(10);
      const yLabels = await chart.locator('text.tick.y').allTextContents();
      const xLabels = await chart.locator('text.tick.x').allTextContents();
      expect(yLabels.length).toBeGreaterThanOrEqual(3);
      expect(yLabels.every((label) => Number.isFinite(Number(label)))).toBe(true);
      expect(xLabels).toContain('05-04 00:00');
    }
    const summary = await page.locator('table.summary tbody tr').allTextContents();
    expect(summary).toHaveLength(2);
    expect(summary[0]).toMatch(/^temp/);
    expect(await page.locator('table.devices tbody tr').count()).toBe(4);
    expect(await page.locator('script').count()).toBe(0);
    expect(requests).toEqual([`${h.base}${links.html}`]); // self-contained: nothing else is fetched
    expect(problems).toEqual([]);

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'report.png'), fullPage: true });
    await page.pdf?.({ path: join(ARTIFACTS, 'report.pdf') }).catch(() => undefined); // printable: Chromium's print path
    await page.close();
  });
});
