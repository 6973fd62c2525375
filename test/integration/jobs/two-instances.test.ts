import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXECUTIONS_COLLECTION } from '../../../functions/jobs/execution-repository.js';
import { fetchOpenApiDocument } from '../../support/openapi.js';
import { type JobsHarness, jobBody, startJobsHarness } from './harness.js';

// Two instances of jobs on one database: passes and device requests race, and nothing happens twice.
let h: JobsHarness;
beforeAll(async () => {
  h = await startJobsHarness({ instances: 2, env: { JOBS_BATCH_SIZE: '50' } });
});
afterAll(async () => {
  await h?.close();
});

describe('two instances', () => {
  it('release each execution once, at the job rate, when passes run concurrently', async () => {
    const devices = Array.from({ length: 120 }, (_, i) => h.id(`pair-${i}`));
    await h.addDevices(devices.map((id) => ({ id })));
    const jobId = h.id('pair');
    await h.request('POST', '/jobs', jobBody(jobId, { deviceIds: devices }, { rollout: { maximumPerMinute: 60 } }));
    for (let minute = 0; minute < 3; minute += 1) {
      await Promise.all([h.pass(0), h.pass(1), h.pass(0), h.pass(1)]);
      h.clock.advance(60_000);
    }
    await Promise.all([h.pass(0), h.pass(1)]);
    // 1 + 60/min over 3 minutes: 181 allowed, 120 exist; every one notified exactly once.
    const nexts = devices.map((id) => h.published(id, '/jobs/notify-next').length);
    expect(nexts.every((n) => n === 1)).toBe(true);
  });

  it('never start the same execution twice: racing start-next requests on both instances', async () => {
    const devices = Array.from({ length: 20 }, (_, i) => h.id(`race-${i}`));
    await h.addDevices(devices.map((id) => ({ id })));
    const jobId = h.id('race');
    await h.request('POST', '/jobs', jobBody(jobId, { deviceIds: devices }));
    await h.pass(0);
    await Promise.all(
      devices.flatMap((id) => [
        h.deviceRequest(id, 'start-next', {}, undefined, 0),
        h.deviceRequest(id, 'start-next', {}, undefined, 1),
      ]),
    );
    const docs = await (await h.mongo.db()).collection(EXECUTIONS_COLLECTION).find({ jobId }).toArray();
    // One QUEUED → IN_PROGRESS move each (version 1 → 2), and both answers name that same start.
    expect(docs.map((d) => [d.status, d.versionNumber])).toEqual(devices.map(() => ['IN_PROGRESS', 2]));
    for (const id of devices) {
      const answers = h.published(id, '/jobs/start-next/accepted');
      expect(answers).toHaveLength(2);
      expect(new Set(answers.map((a) => a.payload.execution.startedAt)).size).toBe(1);
    }
  });

  it('racing terminal updates: one is accepted, the other refused with the current state', async () => {
    const [device] = [h.id('update-race')];
    await h.addDevices([{ id: device! }]);
    const jobId = h.id('update-race');
    await h.request('POST', '/jobs', jobBody(jobId, { deviceIds: [device] }));
    await h.pass(0);
    await Promise.all([
      h.deviceRequest(device!, 'update', { status: 'SUCCEEDED', expectedVersion: 1 }, jobId, 0),
      h.deviceRequest(device!, 'update', { status: 'FAILED', expectedVersion: 1 }, jobId, 1),
    ]);
    expect(h.published(device!, `/jobs/${jobId}/update/accepted`)).toHaveLength(1);
    expect(h.published(device!, `/jobs/${jobId}/update/rejected`)).toHaveLength(1);
    const counts = (await h.request('GET', `/jobs/${jobId}`)).body.counts;
    expect(counts.SUCCEEDED + counts.FAILED).toBe(1);
  });

  it('publishes its OpenAPI document', async () => {
    const doc = await fetchOpenApiDocument(h.instances[0]!.base);
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/jobs',
        '/jobs/{jobId}',
        '/jobs/{jobId}/cancel',
        '/artifacts',
        '/artifacts/{artifactId}/content',
      ]),
    );
    expect(doc.paths['/jobs']!.post['x-required-scope']).toBe('jobs:write');
  });
});
