import { describe, expect, it } from 'vitest';
import { compare, observe } from '../../../functions/telemetry-ingest/evaluate-alerts.js';
import {
  DisabledDeviceError,
  EventInProgressError,
  isRejection,
  RateLimitRefusal,
  UnknownDeviceError,
} from '../../../functions/telemetry-ingest/refusals.js';
import { type AlertRule, alertRuleInputSchema } from '../../../functions/telemetry-ingest/schema.js';
import { parseBasic } from '../../../shared/device-auth.js';
import { InvalidInputError, toProblem } from '../../../shared/errors.js';
import { decodeCursor, encodeCursor } from '../../../shared/keyset-cursor.js';

describe('telemetry-ingest refusals map to Knative-safe answers', () => {
  it.each([
    [new InvalidInputError('x'), 400, true],
    [new UnknownDeviceError('d'), 422, true],
    [new DisabledDeviceError('d'), 422, true],
    // Rate limited on the event path: permanent (422), so Knative does not retry the excess.
    [new RateLimitRefusal(250, true), 422, true],
    [new RateLimitRefusal(250, true).toHttp(), 429, false],
    [new EventInProgressError('e'), 409, false],
  ])('%o → %i (a rejection the device hears about: %s)', (error, status, rejection) => {
    expect(toProblem(error).status).toBe(status);
    expect(isRejection(error)).toBe(rejection);
  });
});

describe('alert rule evaluation inputs', () => {
  it('compares with all four operators', () => {
    expect([compare(5, '>', 5), compare(5, '>=', 5), compare(5, '<', 5), compare(5, '<=', 5)]).toEqual([
      false,
      true,
      false,
      true,
    ]);
  });

  it('observes a rule’s metric in time order with hysteresis on the clear side', () => {
    const rule = { metric: 't', comparison: '>', threshold: 80, clearThreshold: 70 } as AlertRule;
    const samples: { index: number; ts: Date; metrics: Record<string, number> }[] = [
      { index: 0, ts: new Date(3), metrics: { t: 75 } },
      { index: 1, ts: new Date(1), metrics: { t: 85 } },
      { index: 2, ts: new Date(2), metrics: { u: 1 } },
      { index: 3, ts: new Date(4), metrics: { t: 70 } },
    ];
    const timed = samples.map((sample) => ({ ...sample, deviceTimed: true }));
    expect(observe(rule, timed)).toEqual([
      { ts: 1, value: 85, breach: true, clear: false },
      { ts: 3, value: 75, breach: false, clear: false },
      { ts: 4, value: 70, breach: false, clear: true },
    ]);
  });

  it('validates rules: one scope, clear threshold on the safe side', () => {
    expect(
      alertRuleInputSchema.safeParse({ deviceId: 'd', metric: 't', comparison: '<', threshold: 5, clearThreshold: 8 })
        .success,
    ).toBe(true);
    expect(
      alertRuleInputSchema.safeParse({ deviceId: 'd', metric: 't', comparison: '<', threshold: 5, clearThreshold: 2 })
        .success,
    ).toBe(false);
    expect(
      alertRuleInputSchema.safeParse({ deviceId: 'd', deviceType: 'x', metric: 't', comparison: '<', threshold: 5 })
        .success,
    ).toBe(false);
  });
});

describe('cursor and Basic credentials', () => {
  it('round-trips a cursor and refuses a forged one', () => {
    expect(decodeCursor(encodeCursor(new Date(5), 'a#1'))).toEqual({ time: new Date(5), id: 'a#1' });
    expect(() => decodeCursor('not-a-cursor')).toThrow(InvalidInputError);
  });

  it('parses RFC 7617 Basic credentials; the password may contain colons', () => {
    expect(parseBasic(`Basic ${Buffer.from('dev-1:a:b').toString('base64')}`)).toEqual({
      user: 'dev-1',
      password: 'a:b',
    });
    expect(parseBasic('Bearer x')).toBeUndefined();
    expect(parseBasic(undefined)).toBeUndefined();
  });
});
