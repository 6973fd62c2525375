import { describe, expect, it } from 'vitest';
import {
  abortVerdict,
  fullCounts,
  initialRolloutState,
  maintenanceWindow,
  RELEASE_STALL_MS,
  rampedState,
  releaseBudget,
  releaseStalled,
  shouldRetry,
} from '../../../functions/jobs/rollout.js';
import { createJobSchema } from '../../../functions/jobs/schema.js';
import { deviceMayMove, jobMayMove } from '../../../functions/jobs/states.js';
import { deviceMatches, targetFilter } from '../../../functions/jobs/targets.js';

const t0 = new Date('2030-01-01T00:00:00Z');
const at = (ms: number) => new Date(t0.getTime() + ms);

describe('rollout rate', () => {
  it('allows 1 + rate × minutes per segment, never more than the rate in any minute', () => {
    const state = initialRolloutState({ maximumPerMinute: 60 }, t0);
    expect(releaseBudget(state, t0)).toBe(1);
    expect(releaseBudget(state, at(999))).toBe(1);
    expect(releaseBudget(state, at(1_000))).toBe(2);
    expect(releaseBudget({ ...state, released: 30 }, at(60_000))).toBe(31);
    // Over any 60 s window starting at a release, at most 60 more.
    let released = 0;
    const times: number[] = [];
    for (let ms = 0; ms <= 180_000; ms += 250) {
      const n = releaseBudget({ ...state, released }, at(ms));
      for (let i = 0; i < n; i += 1) times.push(ms);
      released += n;
    }
    for (const start of times)
      expect(times.filter((t) => t >= start && t < start + 60_000).length).toBeLessThanOrEqual(60);
  });

  it('has no limit without a rate', () => {
    expect(releaseBudget(initialRolloutState(undefined, t0), t0)).toBe(Number.POSITIVE_INFINITY);
  });

  it('ramps by the factor (rounded up) on either criterion, capped at maximumPerMinute', () => {
    const rollout = {
      maximumPerMinute: 25,
      exponentialRate: {
        baseRatePerMinute: 10,
        incrementFactor: 1.5,
        rateIncreaseCriteria: { numberOfNotifiedDevices: 5, numberOfSucceededDevices: 3 },
      },
    };
    const state = initialRolloutState(rollout, t0);
    expect(state.rate).toBe(10);
    expect(rampedState({ ...state, released: 4 }, rollout, 2, at(1))).toBeUndefined();
    expect(rampedState({ ...state, released: 5 }, rollout, 0, at(1))?.rate).toBe(15);
    const bySuccess = rampedState({ ...state, released: 1 }, rollout, 3, at(2));
    expect(bySuccess).toMatchObject({ rate: 15, segment: { at: at(2), released: 1, succeeded: 3 } });
    expect(rampedState({ ...bySuccess!, rate: 20, released: 100 }, rollout, 3, at(3))?.rate).toBe(25);
    expect(rampedState({ ...bySuccess!, rate: 25, released: 100 }, rollout, 3, at(3))).toBeUndefined();
  });

  it('takes an unconfirmed range for a crash only once its claim has stalled, not while a pass may hold it', () => {
    const state = { ...initialRolloutState({ maximumPerMinute: 60 }, t0), released: 50, confirmed: 10 };
    expect(releaseStalled({ ...state, confirmed: 50, claimedAt: t0 }, at(RELEASE_STALL_MS * 10))).toBe(false);
    expect(releaseStalled({ ...state, claimedAt: t0 }, at(RELEASE_STALL_MS - 1))).toBe(false);
    expect(releaseStalled({ ...state, claimedAt: t0 }, at(RELEASE_STALL_MS))).toBe(true);
    // Claimed by a release that did not record the time: long gone.
    expect(releaseStalled(state, t0)).toBe(true);
  });
});

describe('abort and retry', () => {
  const abort = {
    criteria: [
      {
        failureType: 'ALL' as const,
        action: 'CANCEL' as const,
        thresholdPercentage: 20,
        minNumberOfExecutedDevices: 10,
      },
    ],
  };
  it('aborts only past the minimum and at the threshold', () => {
    expect(abortVerdict(abort, fullCounts({ SUCCEEDED: 5, FAILED: 4 }))).toBeUndefined();
    expect(abortVerdict(abort, fullCounts({ SUCCEEDED: 9, FAILED: 1 }))).toBeUndefined();
    expect(abortVerdict(abort, fullCounts({ SUCCEEDED: 8, FAILED: 1, TIMED_OUT: 1 }))).toMatchObject({
      failures: 2,
      executed: 10,
    });
    // QUEUED and CANCELED are not executed.
    expect(abortVerdict(abort, fullCounts({ SUCCEEDED: 8, REJECTED: 1, QUEUED: 50, CANCELED: 9 }))).toBeUndefined();
  });
  it('retries by kind and in total for ALL', () => {
    const retry = { criteria: [{ failureType: 'FAILED' as const, numberOfRetries: 2 }] };
    expect(shouldRetry(retry, 'FAILED', {})).toBe(true);
    expect(shouldRetry(retry, 'FAILED', { FAILED: 2 })).toBe(false);
    expect(shouldRetry(retry, 'TIMED_OUT', {})).toBe(false);
    expect(shouldRetry(retry, 'REJECTED', {})).toBe(false);
    const all = { criteria: [{ failureType: 'ALL' as const, numberOfRetries: 1 }] };
    expect(shouldRetry(all, 'TIMED_OUT', {})).toBe(true);
    expect(shouldRetry(all, 'TIMED_OUT', { FAILED: 1 })).toBe(false);
  });
});

describe('maintenance windows', () => {
  const scheduling = {
    endBehavior: 'STOP_ROLLOUT' as const,
    maintenanceWindows: [{ startTime: '0 2 * * *', durationInMinutes: 60 }],
  };
  it('is open from the cron time for its duration (UTC)', () => {
    expect(maintenanceWindow(scheduling, new Date('2030-01-01T01:59:59Z')).open).toBe(false);
    expect(maintenanceWindow(scheduling, new Date('2030-01-01T02:00:00Z'))).toEqual({
      open: true,
      since: new Date('2030-01-01T02:00:00Z'),
    });
    expect(maintenanceWindow(scheduling, new Date('2030-01-01T02:59:59Z')).open).toBe(true);
    expect(maintenanceWindow(scheduling, new Date('2030-01-01T03:00:00Z')).open).toBe(false);
    expect(maintenanceWindow(undefined, t0)).toEqual({ open: true });
  });
});

describe('states', () => {
  it('only move forward', () => {
    expect(deviceMayMove('QUEUED', 'IN_PROGRESS')).toBe(true);
    expect(deviceMayMove('IN_PROGRESS', 'SUCCEEDED')).toBe(true);
    expect(deviceMayMove('SUCCEEDED', 'IN_PROGRESS')).toBe(false);
    expect(deviceMayMove('CANCELED', 'SUCCEEDED')).toBe(false);
    expect(jobMayMove('COMPLETED', 'IN_PROGRESS')).toBe(false);
    expect(jobMayMove('IN_PROGRESS', 'ABORTED')).toBe(true);
    expect(jobMayMove('SCHEDULED', 'COMPLETED')).toBe(false);
  });
});

describe('targets and the job contract', () => {
  const targets = {
    deviceIds: ['a'],
    tags: ['t'],
    types: ['gw'],
    query: { type: 'thermo', tags: ['eu', 'beta'], metadata: { hw: 'r2' } },
  };
  const device = (over: object) => ({ id: 'x', tags: [], metadata: {}, status: 'active', ...over });
  it('matches a device the way the query filter does', () => {
    expect(deviceMatches(targets, device({ id: 'a' }))).toBe(true);
    expect(deviceMatches(targets, device({ tags: ['t'] }))).toBe(true);
    expect(deviceMatches(targets, device({ type: 'gw' }))).toBe(true);
    expect(deviceMatches(targets, device({ type: 'thermo', tags: ['eu', 'beta'], metadata: { hw: 'r2' } }))).toBe(true);
    expect(deviceMatches(targets, device({ type: 'thermo', tags: ['eu'], metadata: { hw: 'r2' } }))).toBe(false);
    expect(deviceMatches(targets, device({ id: 'a', status: 'disabled' }))).toBe(false);
    expect(targetFilter(targets)).toMatchObject({ status: 'active' });
  });
  it('refuses reserved job ids, empty targets and an OTA job without its artifact fields', () => {
    const ok = { jobId: 'j1', document: {}, targets: { deviceIds: ['a'] } };
    expect(createJobSchema.safeParse(ok).success).toBe(true);
    expect(createJobSchema.safeParse({ ...ok, jobId: 'notify-next' }).success).toBe(false);
    expect(createJobSchema.safeParse({ ...ok, targets: {} }).success).toBe(false);
    expect(createJobSchema.safeParse({ ...ok, type: 'ota' }).success).toBe(false);
    expect(
      createJobSchema.safeParse({
        ...ok,
        scheduling: { maintenanceWindows: [{ startTime: 'not cron', durationInMinutes: 5 }] },
      }).success,
    ).toBe(false);
  });

  it('refuses a document MongoDB cannot store: a key with U+0000 at any depth, or nesting past 64 levels', () => {
    // schemathesis found the first answered 500 (the driver: "key must not contain null bytes").
    const job = (document: Record<string, unknown>) => ({ jobId: 'j1', document, targets: { deviceIds: ['a'] } });
    expect(createJobSchema.safeParse(job({ 'a\u0000b': '' })).success).toBe(false);
    expect(createJobSchema.safeParse(job({ a: [{ b: { 'c\u0000': null } }] })).success).toBe(false);
    let deep: unknown = 1;
    for (let level = 0; level < 64; level += 1) deep = [deep];
    expect(createJobSchema.safeParse(job({ deep })).success).toBe(false);
    expect(createJobSchema.safeParse(job({ deep: (deep as unknown[])[0] })).success).toBe(true);
    expect(createJobSchema.safeParse(job({ 'fw.version': '1.2', $note: 'kept as it is' })).success).toBe(true);
  });
});
