import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReportApp } from '../../../functions/report-generation/app.js';
import { createDeps } from '../../../functions/report-generation/deps.js';
import { createApiKeyAuthorizer, mintApiKey } from '../../../shared/api-keys.js';
import { createEmitter } from '../../../shared/emitter.js';
import { createLogger } from '../../../shared/logger.js';
import { createFunctionServer } from '../../../shared/serve.js';
import { uniqueName } from '../../support/services.js';
import { type JobsHarness, jobBody, startJobsHarness } from './harness.js';

// report-generation shows a job's outcome from the jobs collections (shared/jobs.ts), on the same database.
let h: JobsHarness;
let reports: { base: string; key: string; close(): void };
beforeAll(async () => {
  h = await startJobsHarness();
  const logger = createLogger('report-generation', 'silent');
  const deps = createDeps({ mongo: h.mongo, logger, emitter: createEmitter({ sink: h.sink.url, source: '/test' }) });
  const reader = await mintApiKey('rg-reader', ['reports:read']);
  const server = createFunctionServer(
    uniqueName('rg-jobs'),
    createReportApp(deps, { logger, authorize: createApiKeyAuthorizer([reader.entry]) }),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  reports = {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    key: reader.key,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
});
afterAll(async () => {
  reports?.close();
  await h?.close();
});

describe('job outcome report', () => {
  it('counts executions, groups failures by reason, and shows the timeline, as JSON and HTML', async () => {
    const devices = Array.from({ length: 6 }, (_, i) => h.id(`rep-${i}`));
    await h.addDevices(devices.map((id) => ({ id })));
    const jobId = h.id('report');
    await h.request(
      'POST',
      '/jobs',
      jobBody(
        jobId,
        { deviceIds: devices },
        { description: 'firmware <2.0>', retry: { criteria: [{ failureType: 'FAILED', numberOfRetries: 1 }] } },
      ),
    );
    await h.pass();
    const update = (i: number, status: string, reason?: string) =>
      h.deviceRequest(devices[i]!, 'update', { status, ...(reason ? { statusDetails: { reason } } : {}) }, jobId);
    await update(0, 'SUCCEEDED');
    await update(1, 'SUCCEEDED');
    await update(2, 'FAILED', 'flash_error'); // retried once …
    await update(2, 'FAILED', 'flash_error'); // … then final
    await update(3, 'FAILED', 'low_battery');
    await update(3, 'FAILED', 'flash_error');
    await update(4, 'REJECTED', 'busy');

    const answer = await fetch(`${reports.base}/jobs/${jobId}/outcome`, {
      headers: { authorization: `Bearer ${reports.key}` },
    });
    expect(answer.status).toBe(200);
    const outcome = (await answer.json()) as any;
    expect(outcome.job).toMatchObject({ jobId, status: 'IN_PROGRESS', description: 'firmware <2.0>' });
    expect(outcome.executions).toBe(6);
    expect(outcome.counts).toEqual({ SUCCEEDED: 2, FAILED: 2, REJECTED: 1, QUEUED: 1 });
    expect(outcome.failuresByReason).toEqual([
      { status: 'FAILED', reason: 'flash_error', count: 2 },
      { status: 'REJECTED', reason: 'busy', count: 1 },
    ]);
    expect(outcome.retriedAttempts).toEqual(
      expect.arrayContaining([
        { status: 'FAILED', reason: 'flash_error', count: 1 },
        { status: 'FAILED', reason: 'low_battery', count: 1 },
      ]),
    );
    expect(
      outcome.completions.reduce(
        (n: number, c: { succeeded: number; failed: number }) => n + c.succeeded + c.failed,
        0,
      ),
    ).toBe(5);
    expect(outcome.timeline.map((e: { kind: string }) => e.kind)).toEqual(['created', 'targets_resolved']);

    const html = await fetch(`${reports.base}/jobs/${jobId}/outcome?format=html`, {
      headers: { authorization: `Bearer ${reports.key}` },
    });
    expect(html.headers.get('content-type')).toContain('text/html');
    const page = await html.text();
    expect(page).toContain('firmware &lt;2.0&gt;');
    expect(page).toContain('flash_error');
    expect(page).toContain('<svg');
    expect(
      (
        await fetch(`${reports.base}/jobs/${h.id('nope')}/outcome`, {
          headers: { authorization: `Bearer ${reports.key}` },
        })
      ).status,
    ).toBe(404);
  });
});
