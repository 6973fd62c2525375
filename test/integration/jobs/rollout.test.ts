import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RELEASE_STALL_MS } from '../../../functions/jobs/rollout.js';
import { type JobsHarness, jobBody, startJobsHarness } from './harness.js';

// Rollout policy, abort, timeouts, retries, cancel, scheduling: driven by scheduler passes on a test clock.
let h: JobsHarness;
beforeAll(async () => {
  h = await startJobsHarness({ env: { JOBS_BATCH_SIZE: '500' } });
});
afterAll(async () => {
  await h?.close();
});

async function fleet(name: string, n: number, tags: string[] = []) {
  const ids = Array.from({ length: n }, (_, i) => h.id(`${name}-${String(i).padStart(4, '0')}`));
  await h.addDevices(ids.map((id) => ({ id, tags })));
  return ids;
}
const job = async (jobId: string) => (await h.request('GET', `/jobs/${jobId}`)).body;
const released = async (jobId: string) => {
  const counts = (await job(jobId)).counts;
  return (
    counts.QUEUED +
    counts.IN_PROGRESS +
    counts.SUCCEEDED +
    counts.FAILED +
    counts.TIMED_OUT +
    counts.REJECTED +
    counts.CANCELED
  );
};
const finish = async (deviceIds: string[], jobId: string, status: string, details?: Record<string, string>) => {
  for (const id of deviceIds) {
    expect(await h.deviceRequest(id, 'update', { status, ...(details ? { statusDetails: details } : {}) }, jobId)).toBe(
      204,
    );
  }
};

describe('rollout rate', () => {
  it('releases at most maximumPerMinute, evenly, as the clock moves', async () => {
    const devices = await fleet('rate', 40);
    const jobId = h.id('rate');
    await h.request('POST', '/jobs', jobBody(jobId, { deviceIds: devices }, { rollout: { maximumPerMinute: 10 } }));
    await h.pass();
    expect(await released(jobId)).toBe(1);
    h.clock.advance(30_000);
    await h.pass();
    expect(await released(jobId)).toBe(6); // 1 + 10 × 0.5 min
    h.clock.advance(30_000);
    await h.pass();
    expect(await released(jobId)).toBe(11);
    // Passes in between release nothing more.
    await h.pass();
    await h.pass();
    expect(await released(jobId)).toBe(11);
    h.clock.advance(120_000);
    await h.pass();
    expect(await released(jobId)).toBe(31);
  });

  it('ramps exponentially after the notified criterion, up to maximumPerMinute', async () => {
    const devices = await fleet('ramp', 200);
    const jobId = h.id('ramp');
    await h.request(
      'POST',
      '/jobs',
      jobBody(
        jobId,
        { deviceIds: devices },
        {
          rollout: {
            maximumPerMinute: 40,
            exponentialRate: {
              baseRatePerMinute: 10,
              incrementFactor: 2,
              rateIncreaseCriteria: { numberOfNotifiedDevices: 10 },
            },
          },
        },
      ),
    );
    await h.pass();
    expect((await job(jobId)).currentRatePerMinute).toBe(10);
    h.clock.advance(60_000);
    await h.pass(); // 11 released: the criterion (10 notified) is met, the rate doubles
    expect(await released(jobId)).toBe(11);
    expect((await job(jobId)).currentRatePerMinute).toBe(20);
    h.clock.advance(60_000);
    await h.pass();
    expect(await released(jobId)).toBe(11 + 21);
    expect((await job(jobId)).currentRatePerMinute).toBe(40);
    h.clock.advance(60_000);
    await h.pass();
    expect((await job(jobId)).currentRatePerMinute).toBe(40); // capped
    const timeline = (await h.request('GET', `/jobs/${jobId}/timeline`)).body.items.map(
      (e: { kind: string }) => e.kind,
    );
    expect(timeline.filter((k: string) => k === 'rate_increased')).toHaveLength(2);
  });

  it('ramps after the succeeded criterion', async () => {
    const devices = await fleet('ramp-ok', 30);
    const jobId = h.id('ramp-ok');
    await h.request(
      'POST',
      '/jobs',
      jobBody(
        jobId,
        { deviceIds: devices },
        {
          rollout: {
            exponentialRate: {
              baseRatePerMinute: 2,
              incrementFactor: 1.5,
              rateIncreaseCriteria: { numberOfSucceededDevices: 2 },
            },
          },
        },
      ),
    );
    await h.pass();
    h.clock.advance(30_000);
    await h.pass();
    expect(await released(jobId)).toBe(2);
    await finish(devices.slice(0, 2), jobId, 'SUCCEEDED');
    await h.pass();
    expect((await job(jobId)).currentRatePerMinute).toBe(3);
  });
});

describe('failures on the way', () => {
  it('a release whose notifications could not be sent is notified by the next pass', async () => {
    const [device] = await fleet('repair', 1);
    const jobId = h.id('repair');
    await h.request('POST', '/jobs', jobBody(jobId, { deviceIds: [device] }));
    const answer = h.sink.respond;
    h.sink.respond = () => ({ status: 503 });
    try {
      await h.pass(); // released, but the sink refuses the notifications (the emitter gives up: 503)
    } finally {
      h.sink.respond = answer;
    }
    // The sink saw (and refused) the attempts; the device got nothing. A pass at once leaves the range alone (its
    // claimer could be another instance still notifying it); the first pass once it has stalled sends them again.
    const refused = h.published(device!, '/jobs/notify-next').length;
    expect(refused).toBeGreaterThan(0);
    await h.pass();
    expect(h.published(device!, '/jobs/notify-next')).toHaveLength(refused);
    h.clock.advance(RELEASE_STALL_MS);
    await h.pass();
    const next = await h.waitFor(device!, '/jobs/notify-next', refused);
    expect(next.payload.execution).toMatchObject({ jobId, status: 'QUEUED' });
  });
});

describe('abort', () => {
  it('aborts when failures pass the threshold once enough executions finished, canceling what is queued', async () => {
    const devices = await fleet('abort', 20);
    const jobId = h.id('abort');
    await h.request(
      'POST',
      '/jobs',
      jobBody(
        jobId,
        { deviceIds: devices },
        {
          abort: { criteria: [{ failureType: 'FAILED', thresholdPercentage: 50, minNumberOfExecutedDevices: 4 }] },
        },
      ),
    );
    await h.pass();
    await finish(devices.slice(0, 2), jobId, 'FAILED', { reason: 'checksum' });
    await finish(devices.slice(2, 3), jobId, 'SUCCEEDED');
    expect((await job(jobId)).status).toBe('IN_PROGRESS'); // 3 executed: below the minimum
    await finish(devices.slice(3, 4), jobId, 'FAILED', { reason: 'flash' }); // 3 of 4 failed: 75 % ≥ 50 %
    const aborted = await job(jobId);
    expect(aborted.status).toBe('ABORTED');
    expect(aborted.reasonCode).toBe('abort_failed');
    expect(aborted.counts).toMatchObject({ FAILED: 3, SUCCEEDED: 1, CANCELED: 16, QUEUED: 0 });
  });
});

describe('timeouts and retries', () => {
  it('times out an execution IN_PROGRESS too long, retries it once, then keeps TIMED_OUT', async () => {
    const [device] = await fleet('timeout', 1);
    const jobId = h.id('timeout');
    await h.request(
      'POST',
      '/jobs',
      jobBody(
        jobId,
        { deviceIds: [device] },
        {
          timeout: { inProgressTimeoutInMinutes: 5 },
          retry: { criteria: [{ failureType: 'TIMED_OUT', numberOfRetries: 1 }] },
        },
      ),
    );
    await h.pass();
    await h.deviceRequest(device!, 'start-next', {});
    await h.waitFor(device!, '/jobs/start-next/accepted');
    h.clock.advance(4 * 60_000);
    await h.pass();
    expect((await h.request('GET', `/jobs/${jobId}/executions/${device}`)).body.status).toBe('IN_PROGRESS');
    h.clock.advance(2 * 60_000);
    await h.pass();
    const retried = (await h.request('GET', `/jobs/${jobId}/executions/${device}`)).body;
    expect(retried).toMatchObject({ status: 'QUEUED', executionNumber: 2, retryAttempt: 1 });
    expect(retried.attempts).toEqual([expect.objectContaining({ executionNumber: 1, status: 'TIMED_OUT' })]);
    await h.deviceRequest(device!, 'start-next', {});
    await h.waitFor(device!, '/jobs/start-next/accepted', 1);
    h.clock.advance(6 * 60_000);
    await h.pass();
    expect((await h.request('GET', `/jobs/${jobId}/executions/${device}`)).body.status).toBe('TIMED_OUT');
    await h.pass();
    expect((await job(jobId)).status).toBe('COMPLETED');
  });

  it('a step timeout a device sets is honoured', async () => {
    const [device] = await fleet('step', 1);
    const jobId = h.id('step');
    await h.request('POST', '/jobs', jobBody(jobId, { deviceIds: [device] }));
    await h.pass();
    await h.deviceRequest(device!, 'start-next', { stepTimeoutInMinutes: 1 });
    await h.waitFor(device!, '/jobs/start-next/accepted');
    h.clock.advance(61_000);
    await h.pass();
    expect((await h.request('GET', `/jobs/${jobId}/executions/${device}`)).body.status).toBe('TIMED_OUT');
  });
});

describe('cancel', () => {
  it('cancel stops QUEUED executions and lets IN_PROGRESS ones finish; force cancels those too', async () => {
    const devices = await fleet('cancel', 3);
    const jobId = h.id('cancel');
    await h.request('POST', '/jobs', jobBody(jobId, { deviceIds: devices }));
    await h.pass();
    await h.deviceRequest(devices[0]!, 'start-next', {});
    await h.waitFor(devices[0]!, '/jobs/start-next/accepted');
    const canceled = await h.request('POST', `/jobs/${jobId}/cancel`, { reasonCode: 'bad-build' });
    expect(canceled.status).toBe(200);
    expect(canceled.body).toMatchObject({
      status: 'CANCELED',
      reasonCode: 'bad-build',
      counts: { IN_PROGRESS: 1, CANCELED: 2 },
    });
    const forced = await h.request('POST', `/jobs/${jobId}/cancel`, { force: true });
    expect(forced.body).toMatchObject({
      status: 'CANCELED',
      forceCanceled: true,
      counts: { IN_PROGRESS: 0, CANCELED: 3 },
    });
    await h.deviceRequest(devices[0]!, 'update', { status: 'SUCCEEDED' }, jobId);
    expect((await h.waitFor(devices[0]!, `/jobs/${jobId}/update/rejected`)).payload.code).toBe('TerminalStateReached');
  });

  it('one execution can be canceled; IN_PROGRESS needs force', async () => {
    const devices = await fleet('cancel-one', 2);
    const jobId = h.id('cancel-one');
    await h.request('POST', '/jobs', jobBody(jobId, { deviceIds: devices }));
    await h.pass();
    await h.deviceRequest(devices[0]!, 'start-next', {});
    await h.waitFor(devices[0]!, '/jobs/start-next/accepted');
    expect((await h.request('POST', `/jobs/${jobId}/executions/${devices[0]}/cancel`, {})).status).toBe(409);
    expect(
      (await h.request('POST', `/jobs/${jobId}/executions/${devices[0]}/cancel`, { force: true, expectedVersion: 1 }))
        .status,
    ).toBe(412);
    expect(
      (await h.request('POST', `/jobs/${jobId}/executions/${devices[0]}/cancel`, { force: true })).body.status,
    ).toBe('CANCELED');
    expect((await h.request('POST', `/jobs/${jobId}/executions/${devices[1]}/cancel`, {})).body.status).toBe(
      'CANCELED',
    );
    await h.pass();
    expect((await job(jobId)).status).toBe('COMPLETED');
  });
});

describe('scheduling', () => {
  it('a job waits SCHEDULED until its start time, and releases only inside its maintenance window', async () => {
    const devices = await fleet('sched', 5);
    const jobId = h.id('sched');
    const start = new Date(h.clock.now.getTime() + 10 * 60_000);
    // Windows start at minute 0 of every hour and last 15 minutes (UTC).
    const answer = await h.request(
      'POST',
      '/jobs',
      jobBody(
        jobId,
        { deviceIds: devices },
        {
          scheduling: {
            startTime: start.toISOString(),
            maintenanceWindows: [{ startTime: '0 * * * *', durationInMinutes: 15 }],
          },
        },
      ),
    );
    expect(answer.body.status).toBe('SCHEDULED');
    await h.pass();
    expect((await job(jobId)).status).toBe('SCHEDULED');
    // Move to the start, then outside a window (minute 20 of the hour): started, nothing released.
    const minute = new Date(h.clock.now);
    minute.setUTCMinutes(20, 0, 0);
    if (minute.getTime() < start.getTime()) minute.setUTCHours(minute.getUTCHours() + 1);
    h.clock.advance(minute.getTime() - h.clock.now.getTime());
    await h.pass();
    await h.pass();
    expect((await job(jobId)).status).toBe('IN_PROGRESS');
    expect(await released(jobId)).toBe(0);
    h.clock.advance(45 * 60_000); // minute 5 of the next hour: inside the window
    await h.pass();
    expect(await released(jobId)).toBe(5);
  });

  it('a continuous job takes devices that join the target set later', async () => {
    const tag = h.id('later');
    const [first] = await fleet('cont', 1, [tag]);
    const jobId = h.id('cont');
    await h.request('POST', '/jobs', jobBody(jobId, { tags: [tag] }, { targetSelection: 'CONTINUOUS' }));
    await h.pass();
    const late = h.id('cont-late');
    await h.addDevices([{ id: late, tags: [tag] }]);
    expect(
      await h.sendEvent({
        type: 'io.kiot.device.registered',
        subject: late,
        data: { id: late, tags: [tag], metadata: {}, status: 'active' },
      }),
    ).toBe(204);
    await h.pass();
    const ids = (await h.request('GET', `/jobs/${jobId}/executions`)).body.items.map(
      (e: { deviceId: string }) => e.deviceId,
    );
    expect(ids.sort()).toEqual([first, late].sort());
    await h.waitFor(late, '/jobs/notify-next');
    await finish([first!, late], jobId, 'SUCCEEDED');
    await h.pass();
    expect((await job(jobId)).status).toBe('IN_PROGRESS'); // continuous jobs never complete by themselves
  });

  it("a bulk registration's batch event adds the devices a continuous job targets, once each", async () => {
    const tag = h.id('bulk');
    const [first] = await fleet('bulk', 1, [tag]);
    const jobId = h.id('bulk-job');
    await h.request('POST', '/jobs', jobBody(jobId, { tags: [tag] }, { targetSelection: 'CONTINUOUS' }));
    await h.pass();
    const joining = [h.id('bulk-a'), h.id('bulk-b')];
    const other = h.id('bulk-other');
    await h.addDevices([...joining.map((id) => ({ id, tags: [tag] })), { id: other, tags: ['elsewhere'] }]);
    const item = (id: string, tags: string[]) => ({
      id: `${id}-registered`,
      subject: id,
      time: new Date().toISOString(),
      data: { id, tags, metadata: {}, status: 'active' },
    });
    const batch = {
      type: 'io.kiot.device.registered.batch',
      data: [item(joining[0]!, [tag]), item(other, ['elsewhere']), item(joining[1]!, [tag]), item(first!, [tag])],
    };
    expect(await h.sendEvent(batch)).toBe(204);
    expect(await h.sendEvent(batch)).toBe(204); // redelivered: nobody joins twice
    expect(await h.sendEvent({ type: 'io.kiot.device.registered.batch', data: [{ id: 'x' }] })).toBe(400);
    await h.pass();
    const listed = (await h.request('GET', `/jobs/${jobId}/executions`)).body.items as { deviceId: string }[];
    expect(listed.map((e) => e.deviceId).sort()).toEqual([first, ...joining].sort());
    expect((await job(jobId)).targetCount).toBe(3);
    await h.waitFor(joining[1]!, '/jobs/notify-next');
  });
});

describe('the app API', () => {
  it('Idempotency-Key: a retry gets the same job; the key for another job is 422; a taken id is 409', async () => {
    const [device] = await fleet('idem', 1);
    const jobId = h.id('idem');
    const body = jobBody(jobId, { deviceIds: [device] });
    const first = await h.request('POST', '/jobs', body, { 'idempotency-key': '"k-1"' });
    const retry = await h.request('POST', '/jobs', body, { 'idempotency-key': '"k-1"' });
    expect([first.status, retry.status]).toEqual([201, 200]);
    expect(retry.headers.get('idempotent-replayed')).toBe('true');
    expect(retry.body.jobId).toBe(jobId);
    expect(
      (await h.request('POST', '/jobs', jobBody(h.id('idem-2'), { deviceIds: [device] }), { 'idempotency-key': 'k-1' }))
        .status,
    ).toBe(422);
    expect((await h.request('POST', '/jobs', body)).status).toBe(409);
  });

  it('lists and filters jobs; deletes an ended job with its executions', async () => {
    const [device] = await fleet('list', 1);
    const jobId = h.id('list');
    await h.request('POST', '/jobs', jobBody(jobId, { deviceIds: [device] }));
    await h.pass();
    const byDevice = await h.request('GET', `/jobs?deviceId=${device}`);
    expect(byDevice.body.items.map((j: { jobId: string }) => j.jobId)).toEqual([jobId]);
    const canceled = await h.request('GET', '/jobs?status=CANCELED&limit=500');
    expect(canceled.body.items.every((j: { status: string }) => j.status === 'CANCELED')).toBe(true);
    expect((await h.request('DELETE', `/jobs/${jobId}`)).status).toBe(409);
    expect((await h.request('DELETE', `/jobs/${jobId}?force=true`)).status).toBe(204);
    expect((await h.request('GET', `/jobs/${jobId}`)).status).toBe(404);
    expect((await h.request('GET', `/jobs?deviceId=${device}`)).body.items).toEqual([]);
  });

  it('needs the scopes: no key is 401', async () => {
    const response = await fetch(`${h.instances[0]!.base}/jobs`);
    expect(response.status).toBe(401);
  });
});
