import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AxeBuilder } from '@axe-core/playwright';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, type TestBrowser } from '../../support/chromium.js';
import { type IsolatedStack, startIsolatedStack } from '../../support/isolated-stack.js';
import { ROOT } from '../../unit/knative/lib/manifests.js';

const ARTIFACTS = join(ROOT, 'test-artifacts', 'console');
const CONSOLE = 'http://127.0.0.1:8100';
const DEVICES = 6;

/** A request of the page's own (`fetch` in the page: it runs where the browser runs, in the stack's namespace). */
async function apiFromPage(
  page: Page,
  key: string,
  path: string,
  init: { method?: string; body?: unknown; headers?: Record<string, string> } = {},
) {
  return page.evaluate(
    async ({ key, path, init }) => {
      const response = await fetch(path, {
        method: init.method ?? 'GET',
        headers: {
          authorization: `Bearer ${key}`,
          ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
          ...init.headers,
        },
        ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
      });
      const text = await response.text();
      return { status: response.status, body: text ? (JSON.parse(text) as any) : undefined };
    },
    { key, path, init },
  );
}

// The web console end to end: `npm start` (its own network namespace, a simulated fleet) and Debian's Chromium
// driven by playwright-core, in the same namespace. Every page is checked by axe-core and photographed.
describe('the web console in real Chromium against npm start', { timeout: 600_000 }, () => {
  let stack: IsolatedStack;
  let browser: TestBrowser;
  let page: Page;
  let adminKey: string;
  const consoleErrors: string[] = [];
  const failedRequests: string[] = [];
  /** Answers ≥ 400 the test provokes on purpose (a stale edit, a read-only key trying to write). */
  const expectedRefusals: string[] = [];
  const refusals: string[] = [];

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    stack = await startIsolatedStack({
      root: ROOT,
      prefix: 'kiot-console-',
      env: {
        SIM_DEVICES: String(DEVICES),
        SIM_RATE: '2',
        SIM_PROGRESS_EVERY: '2',
        KIOT_REPORT_AFTER: '3600',
        KIOT_ROLLOUT_AFTER: '5',
        SIM_JOB_INSTALL_MS: '300',
      },
      ready: new RegExp(`^simulator: ${DEVICES}/${DEVICES} online · sent [1-9]`, 'm'),
    });
    expect(stack.output()).toMatch(/web console\s+http:\/\/127\.0\.0\.1:8100\//);
    adminKey = /^API_KEY='(.*)'$/m.exec(readFileSync(join(stack.dir, '.kiot', 'dev', 'api-key.env'), 'utf8'))![1]!;
    expect(stack.output()).toContain(adminKey);
    browser = await launchChromium({ networkNamespaceOf: stack.pid, viewport: { width: 1280, height: 900 } });
    page = await browser.context.newPage();
    page.on('console', (message) => {
      // Chromium logs every 4xx as "Failed to load resource": the answers themselves are checked below.
      if (message.type() === 'error' && !message.text().startsWith('Failed to load resource: the server responded'))
        consoleErrors.push(`${page.url()}: ${message.text()}`);
    });
    page.on('pageerror', (error) => consoleErrors.push(`${page.url()}: ${error.message}`));
    page.on('requestfailed', (request) => {
      // A live stream or a load cut short by leaving the page is the browser's doing, not a failure.
      if (request.failure()?.errorText === 'net::ERR_ABORTED') return;
      failedRequests.push(`${request.method()} ${request.url()}: ${request.failure()?.errorText}`);
    });
    page.on('response', (response) => {
      if (response.status() >= 400)
        refusals.push(`${response.request().method()} ${new URL(response.url()).pathname} ${response.status()}`);
    });
  }, 1_200_000);

  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
  }, 120_000);

  /**
   * With KIOT_DOCS_SCREENSHOTS=1 the README's screenshots are taken from this run (docs/console-*.png): they show
   * what the test saw, never a mock-up.
   */
  function publishToDocs(name: string, as: string) {
    if (process.env.KIOT_DOCS_SCREENSHOTS === '1')
      copyFileSync(join(ARTIFACTS, `${name}.png`), join(ROOT, 'docs', `${as}.png`));
  }

  async function checkPage(name: string) {
    await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
    const results = await new AxeBuilder({ page }).analyze();
    const serious = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    expect(
      serious.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join('; ')})`),
      `axe on ${name}`,
    ).toEqual([]);
  }

  it('signs in with the key npm start printed and shows the overview with the API’s counts', async () => {
    await page.goto(`${CONSOLE}/`);
    await page.getByLabel('API key').waitFor();
    await checkPage('sign-in');
    await page.getByLabel('API key').fill(adminKey);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { level: 1, name: 'Fleet overview' }).waitFor();
    const expected = async () => {
      const devices = (await apiFromPage(page, adminKey, '/api/device-registry/device-summary')).body;
      const telemetry = (await apiFromPage(page, adminKey, '/api/telemetry-ingest/telemetry-summary')).body;
      return {
        total: String(devices.total),
        disabled: String(devices.byStatus.disabled),
        online: String(telemetry.online),
        offline: String(Math.max(0, devices.byStatus.active - telemetry.online)),
      };
    };
    const shown = async () => ({
      total: await page.getByTestId('stat-total').textContent(),
      disabled: await page.getByTestId('stat-disabled').textContent(),
      online: await page.getByTestId('stat-online').textContent(),
      offline: await page.getByTestId('stat-offline').textContent(),
    });
    // The page refreshes every 2 s: the figures on screen meet the API's.
    await expect
      .poll(async () => JSON.stringify(await shown()) === JSON.stringify(await expected()), { timeout: 30_000 })
      .toBe(true);
    expect((await shown()).total).toBe(String(DEVICES));
    expect((await shown()).online).toBe(String(DEVICES));
    await expect
      .poll(async () => Number(await page.getByTestId('stat-rate').textContent()), { timeout: 30_000 })
      .toBeGreaterThan(0);
    // The pictures say the same figures: the fleet bar, the devices per type.
    expect(await page.getByTestId('fleet-shares').locator('.share-bar').getAttribute('aria-label')).toBe(
      `The fleet: ${DEVICES} online (100 %), 0 offline (0 %), 0 disabled (0 %)`,
    );
    const types = page.getByTestId('devices-by-type').locator('tbody tr');
    await expect.poll(() => types.count()).toBe(1);
    expect(await types.first().textContent()).toBe(`sim-sensor${DEVICES}`);
    await checkPage('overview');
  });

  it('finds a device by its id', async () => {
    await page.getByRole('link', { name: 'Devices', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'Devices' }).waitFor();
    await page.getByTestId('devices-table').waitFor();
    await checkPage('devices');
    await page.getByLabel('Id starts with').fill('sim-0003');
    await page.getByRole('button', { name: 'Search' }).click();
    await expect.poll(() => page.getByTestId('devices-table').locator('tbody tr').count()).toBe(1);
    expect(await page.getByTestId('devices-table').locator('tbody').textContent()).toContain('sim-0003');
    expect(new URL(page.url()).search).toBe('?q=sim-0003');
  });

  it('shows a device’s live chart gaining points while the simulator publishes', async () => {
    await page.getByRole('link', { name: 'sim-0003' }).click();
    await page.getByRole('heading', { level: 1, name: 'Device sim-0003' }).waitFor();
    await expect.poll(() => page.getByTestId('live-state').textContent(), { timeout: 30_000 }).toContain('Live');
    const chart = page.getByTestId('chart-temperature');
    await chart.waitFor();
    const points = async () => Number(await chart.getAttribute('data-points'));
    await expect.poll(points, { timeout: 30_000 }).toBeGreaterThan(0);
    const before = await points();
    // New samples arrive over the stream (2 per second per device here), not by reloading the page.
    await expect.poll(points, { timeout: 30_000 }).toBeGreaterThan(before + 2);
    await checkPage('device');
    publishToDocs('device', 'console-device');
  });

  it('sends a command from the page and shows it SUCCEEDED', async () => {
    await page.getByLabel('Command name').fill('ping');
    await page.getByRole('button', { name: 'Send' }).click();
    await expect.poll(() => page.getByTestId('command-status').textContent(), { timeout: 60_000 }).toBe('SUCCEEDED');
    expect(await page.getByTestId('command-watch').textContent()).toMatch(/QUEUED[\s\S]*SENT[\s\S]*SUCCEEDED/);
  });

  it('refuses a desired-state edit made on a stale version, and says so', async () => {
    const textarea = page.getByLabel(/Desired-state patch/);
    await textarea.fill('{"led":"on"}');
    const base = Number(/version (\d+)/.exec((await page.getByTestId('shadow-version').textContent()) ?? '')![1]);
    // Someone else changes the shadow after this edit began.
    const other = await apiFromPage(page, adminKey, '/api/command-dispatch/devices/sim-0003/state/desired', {
      method: 'PATCH',
      body: { reportIntervalSeconds: 1 },
      headers: { 'if-match': `"${base}"` },
    });
    expect(other.status).toBe(200);
    expectedRefusals.push('PATCH /api/command-dispatch/devices/sim-0003/state/desired 412');
    await page.getByRole('button', { name: 'Save desired state' }).click();
    await page.getByTestId('shadow-conflict').waitFor();
    expect(await page.getByTestId('shadow-conflict').textContent()).toContain(`since version ${base}`);
  });

  it('shows alerts, commands, jobs, reports and dead letters, each accessible', async () => {
    const rule = await apiFromPage(page, adminKey, '/api/telemetry-ingest/alert-rules', {
      method: 'POST',
      body: { deviceType: 'sim-sensor', metric: 'temperature', comparison: '>', threshold: -100, name: 'always hot' },
    });
    expect(rule.status).toBe(201);
    for (const [link, heading, name] of [
      ['Alerts', 'Alerts', 'alerts'],
      ['Commands', 'Commands', 'commands'],
      ['Jobs', 'Jobs', 'jobs'],
      ['Reports', 'Reports', 'reports'],
      ['Dead letters', 'Dead letters', 'dead-letters'],
    ] as const) {
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: link, exact: true }).click();
      await page.getByRole('heading', { level: 1, name: heading }).waitFor();
      await page
        .locator('text=Loading')
        .first()
        .waitFor({ state: 'detached', timeout: 15_000 })
        .catch(() => undefined);
      await checkPage(name);
      if (name === 'alerts') {
        // The rule raises for every device: acknowledge one from the page.
        const open = page.getByTestId('open-alerts');
        await open.getByRole('button', { name: 'Acknowledge' }).first().click({ timeout: 30_000 });
        await expect.poll(() => open.textContent(), { timeout: 15_000 }).toContain('by local-admin');
        // The overview lists the newest open alerts, each linked to its device.
        await page
          .getByRole('navigation', { name: 'Main' })
          .getByRole('link', { name: 'Overview', exact: true })
          .click();
        const latest = page.getByTestId('latest-alerts');
        await latest.waitFor({ timeout: 30_000 });
        await expect.poll(() => latest.locator('tbody tr').count()).toBeGreaterThan(0);
        expect(await latest.locator('tbody tr').first().textContent()).toMatch(/^sim-\d{4}temperature > -100/);
        expect(Number(await page.getByTestId('stat-alerts').textContent())).toBeGreaterThan(0);
        await checkPage('overview-alerts');
        publishToDocs('overview-alerts', 'console-overview');
      }
    }
    // The example rollout npm start runs: its progress, live.
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Jobs', exact: true }).click();
    await page.getByTestId('jobs-table').locator('tbody a').first().click();
    await page.getByRole('heading', { level: 1, name: /^Job / }).waitFor();
    await page.locator('progress').first().waitFor();
    expect(await page.getByRole('heading', { name: 'Rollout' }).count()).toBe(1);
    await checkPage('job');
  });

  it('gives a read-only key a read-only console, and the API refuses it anyway', async () => {
    const created = await apiFromPage(page, adminKey, '/api/api-keys/api-keys', {
      method: 'POST',
      body: {
        name: 'viewer',
        scopes: ['devices:read', 'telemetry:read', 'commands:read', 'reports:read', 'jobs:read', 'deadletters:read'],
      },
    });
    expect(created.status).toBe(201);
    const viewer = created.body.key as string;
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API key').fill(viewer);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('read-only').waitFor();

    await page.goto(`${CONSOLE}/devices`);
    await page.getByTestId('devices-table').waitFor();
    expect(await page.getByRole('button', { name: 'Register a device' }).count()).toBe(0);
    await page.goto(`${CONSOLE}/devices/sim-0001`);
    await page.getByRole('heading', { level: 1, name: 'Device sim-0001' }).waitFor();
    await page.getByRole('heading', { name: 'Shadow' }).waitFor();
    for (const name of ['Edit', 'Disable', 'Rotate credentials', 'Delete', 'Send', 'Save desired state'])
      expect(await page.getByRole('button', { name, exact: true }).count(), name).toBe(0);
    await page.goto(`${CONSOLE}/alerts`);
    await page.getByRole('heading', { name: 'Rules' }).waitFor();
    expect(await page.getByRole('button', { name: 'New rule' }).count()).toBe(0);
    await checkPage('read-only-alerts');

    const attempts = [
      ['POST', '/api/device-registry/devices', { id: 'intruder' }],
      ['POST', '/api/command-dispatch/devices/sim-0001/commands', { name: 'reboot' }],
      ['PATCH', '/api/command-dispatch/devices/sim-0001/state/desired', { led: 'off' }],
      ['POST', '/api/dead-letters/dead-letters/replay', {}],
    ] as const;
    for (const [method, path, body] of attempts) {
      const answer = await apiFromPage(page, viewer, path, { method, body });
      expect(answer.status, `${method} ${path}`).toBe(403);
      expectedRefusals.push(`${method} ${path} 403`);
    }
  });

  it('fits a phone-sized window', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${CONSOLE}/`);
    await page.getByTestId('stat-total').waitFor();
    await checkPage('overview-phone');
    // Evaluated in the page: `globalThis` is its window there.
    const overflow = await page.evaluate(() => {
      const win = globalThis as unknown as {
        innerWidth: number;
        document: { documentElement: { scrollWidth: number } };
      };
      return win.document.documentElement.scrollWidth - win.innerWidth;
    });
    expect(overflow).toBeLessThanOrEqual(0);
  });

  it('ran without console errors or failed requests', () => {
    expect(consoleErrors).toEqual([]);
    expect(failedRequests).toEqual([]);
    expect(refusals.sort()).toEqual([...expectedRefusals].sort());
  });
});
