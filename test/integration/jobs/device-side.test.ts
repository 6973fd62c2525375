import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type JobsHarness, jobBody, startJobsHarness } from './harness.js';

// Jobs over the device API: targets, notifications, start-next, updates with versions, isolation.
let h: JobsHarness;
beforeAll(async () => {
  h = await startJobsHarness();
});
afterAll(async () => {
  await h?.close();
});

const executionsOf = async (jobId: string) =>
  (await h.request('GET', `/jobs/${jobId}/executions?limit=1000`)).body.items as { deviceId: string; status: string }[];

describe('targets', () => {
  it('resolve ids, tags, types and a registry query as a union of active devices', async () => {
    const d = (n: string) => h.id(`t-${n}`);
    await h.addDevices([
      { id: d('a') },
      { id: d('b'), tags: [h.id('floor-3')] },
      { id: d('c'), type: h.id('gateway') },
      { id: d('d'), type: h.id('thermo'), tags: [h.id('eu'), h.id('beta')], metadata: { hw: 'r2' } },
      { id: d('e'), type: h.id('thermo'), tags: [h.id('eu')], metadata: { hw: 'r2' } },
      { id: d('f'), tags: [h.id('floor-3')], status: 'disabled' },
      { id: d('g') },
    ]);
    const jobId = h.id('targets');
    const created = await h.request(
      'POST',
      '/jobs',
      jobBody(jobId, {
        deviceIds: [d('a'), d('missing')],
        tags: [h.id('floor-3')],
        types: [h.id('gateway')],
        query: { type: h.id('thermo'), tags: [h.id('eu'), h.id('beta')], metadata: { hw: 'r2' } },
      }),
    );
    expect(created.status).toBe(201);
    expect(created.body.status).toBe('IN_PROGRESS');
    await h.pass();
    const ids = (await executionsOf(jobId)).map((e) => e.deviceId).sort();
    // d: the query (all tags and metadata); not e (one tag missing), not f (disabled), not g.
    expect(ids).toEqual([d('a'), d('b'), d('c'), d('d')]);
  });

  it('refuses a job without targets and an invalid body with 400 and the issues', async () => {
    const answer = await h.request('POST', '/jobs', { jobId: h.id('bad'), document: {}, targets: {} });
    expect(answer.status).toBe(400);
    expect(JSON.stringify(answer.body.error.details)).toContain('targets');
  });
});

describe('the device side', () => {
  it('notifies released executions; start-next moves QUEUED to IN_PROGRESS once; updates are versioned', async () => {
    const device = h.id('dev-1');
    await h.addDevices([{ id: device }]);
    const jobId = h.id('reboot');
    expect((await h.request('POST', '/jobs', jobBody(jobId, { deviceIds: [device] }))).status).toBe(201);
    await h.pass();
    const next = await h.waitFor(device, '/jobs/notify-next');
    expect(next.payload.execution).toMatchObject({
      jobId,
      status: 'QUEUED',
      versionNumber: 1,
      jobDocument: { operation: 'reboot' },
    });
    const notify = await h.waitFor(device, '/jobs/notify');
    expect(notify.payload.jobs.QUEUED).toHaveLength(1);

    expect(
      await h.deviceRequest(device, 'start-next', { clientToken: 'c1', statusDetails: { step: 'download' } }),
    ).toBe(204);
    const started = await h.waitFor(device, '/jobs/start-next/accepted');
    expect(started.payload).toMatchObject({
      clientToken: 'c1',
      execution: { jobId, status: 'IN_PROGRESS', versionNumber: 2 },
    });

    // A second start-next returns the same execution without moving it again.
    await h.deviceRequest(device, 'start-next', {});
    const again = await h.waitFor(device, '/jobs/start-next/accepted', 1);
    expect(again.payload.execution.versionNumber).toBe(2);

    // Progress with the right version is accepted; a stale version is refused with the current state.
    await h.deviceRequest(
      device,
      'update',
      { status: 'IN_PROGRESS', expectedVersion: 2, statusDetails: { progress: '50' }, includeJobExecutionState: true },
      jobId,
    );
    const progress = await h.waitFor(device, `/jobs/${jobId}/update/accepted`);
    expect(progress.payload.executionState).toMatchObject({ status: 'IN_PROGRESS', versionNumber: 3 });
    await h.deviceRequest(device, 'update', { status: 'SUCCEEDED', expectedVersion: 2, clientToken: 'stale' }, jobId);
    const stale = await h.waitFor(device, `/jobs/${jobId}/update/rejected`);
    expect(stale.payload).toMatchObject({
      code: 'VersionMismatch',
      clientToken: 'stale',
      executionState: { status: 'IN_PROGRESS', versionNumber: 3, statusDetails: { progress: '50' } },
    });

    await h.deviceRequest(device, 'update', { status: 'SUCCEEDED', expectedVersion: 3 }, jobId);
    await h.waitFor(device, `/jobs/${jobId}/update/accepted`, 1);
    // Terminal: any later update is refused as TerminalStateReached.
    await h.deviceRequest(device, 'update', { status: 'FAILED' }, jobId);
    const late = await h.waitFor(device, `/jobs/${jobId}/update/rejected`, 1);
    expect(late.payload.code).toBe('TerminalStateReached');

    await h.pass();
    const job = (await h.request('GET', `/jobs/${jobId}`)).body;
    expect(job.status).toBe('COMPLETED');
    expect(job.counts).toMatchObject({ SUCCEEDED: 1, QUEUED: 0, IN_PROGRESS: 0 });
  });

  it('an offline device hears of its execution when it connects, and can ask for its pending list', async () => {
    const device = h.id('offline');
    await h.addDevices([{ id: device }]);
    const jobId = h.id('while-away');
    await h.request('POST', '/jobs', jobBody(jobId, { deviceIds: [device] }));
    await h.pass();
    const before = h.published(device, '/jobs/notify-next').length;
    expect(await h.sendEvent({ type: 'io.kiot.device.connected', subject: device, data: { status: 'online' } })).toBe(
      204,
    );
    const next = await h.waitFor(device, '/jobs/notify-next', before);
    expect(next.payload.execution).toMatchObject({ jobId, status: 'QUEUED' });
    await h.deviceRequest(device, 'get', { clientToken: 'g' });
    const list = await h.waitFor(device, '/jobs/get/accepted');
    expect(list.payload).toMatchObject({
      clientToken: 'g',
      inProgressJobs: [],
      queuedJobs: [{ jobId, versionNumber: 1 }],
    });
  });

  it('a device cannot read or update an execution of another device or of a job it is not part of', async () => {
    const mine = h.id('mine');
    const other = h.id('other');
    await h.addDevices([{ id: mine }, { id: other }]);
    const jobId = h.id('theirs');
    await h.request('POST', '/jobs', jobBody(jobId, { deviceIds: [other] }));
    await h.pass();
    await h.deviceRequest(mine, 'describe', { includeJobDocument: true }, jobId);
    const describe = await h.waitFor(mine, `/jobs/${jobId}/get/rejected`);
    expect(describe.payload.code).toBe('ResourceNotFound');
    expect(JSON.stringify(describe.payload)).not.toContain('reboot');
    await h.deviceRequest(mine, 'update', { status: 'SUCCEEDED' }, jobId);
    expect((await h.waitFor(mine, `/jobs/${jobId}/update/rejected`)).payload.code).toBe('ResourceNotFound');
    // Nothing reached the other device's topics on mine's behalf, and its execution is untouched.
    expect(h.published(mine).every((p) => p.topic.startsWith(`devices/${mine}/`))).toBe(true);
    const execution = (await h.request('GET', `/jobs/${jobId}/executions/${other}`)).body;
    expect(execution).toMatchObject({ status: 'QUEUED', versionNumber: 1 });
  });

  it('a malformed request is answered on its rejected topic', async () => {
    const device = h.id('malformed');
    await h.addDevices([{ id: device }]);
    await h.deviceRequest(device, 'update', { status: 'DONE' }, h.id('whatever'));
    const rejected = await h.waitFor(device, `/jobs/${h.id('whatever')}/update/rejected`);
    expect(rejected.payload.code).toBe('InvalidRequest');
  });
});
