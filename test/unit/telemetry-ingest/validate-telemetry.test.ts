import { describe, expect, it } from 'vitest';
import { type ValidationPolicy, validateTelemetry } from '../../../functions/telemetry-ingest/validate-telemetry.js';
import { InvalidInputError } from '../../../shared/errors.js';

const now = Date.parse('2026-06-01T12:00:00Z');
const received = new Date(now - 500);
const policy: ValidationPolicy = { maxSamples: 3, maxMetrics: 2, retentionMs: 86_400_000, maxFutureMs: 60_000 };

function refusal(payload: unknown, schema?: Parameters<typeof validateTelemetry>[2]): InvalidInputError {
  try {
    validateTelemetry(payload, policy, schema, received, now);
  } catch (error) {
    if (error instanceof InvalidInputError) return error;
    throw error;
  }
  throw new Error('accepted');
}

describe('validateTelemetry', () => {
  it('takes one sample or a batch; ts as ISO-8601 or epoch ms; the receive time when absent', () => {
    expect(validateTelemetry({ metrics: { t: 1 } }, policy, undefined, received, now)).toEqual([
      { index: 0, ts: received, deviceTimed: false, metrics: { t: 1 } },
    ]);
    const batch = validateTelemetry(
      [
        { ts: '2026-06-01T11:59:00+02:00', metrics: { t: 1 } },
        { ts: now - 1_000, metrics: { t: 2 }, msgId: 'a-1' },
      ],
      { ...policy, retentionMs: 10 * 86_400_000 },
      undefined,
      received,
      now,
    );
    expect(batch.map((s) => s.ts.toISOString())).toEqual([
      '2026-06-01T09:59:00.000Z',
      new Date(now - 1_000).toISOString(),
    ]);
    expect(batch[1]).toMatchObject({ index: 1, msgId: 'a-1', deviceTimed: true });
  });

  it.each([
    ['shape', { metrics: { t: 'x' } }, 'invalid_payload', 'metrics.t'],
    ['bad name', { metrics: { a$b: 1 } }, 'invalid_payload', 'metrics.a$b'],
    ['too many metrics', { metrics: { a: 1, b: 2, c: 3 } }, 'invalid_payload', 'metrics'],
    ['too many samples', [1, 2, 3, 4].map(() => ({ metrics: { a: 1 } })), 'too_many_samples', ''],
    ['too old', { ts: now - 2 * 86_400_000, metrics: { a: 1 } }, 'timestamp_out_of_range', 'ts'],
    ['too new', [{ metrics: { a: 1 } }, { ts: now + 120_000, metrics: { a: 1 } }], 'timestamp_out_of_range', '1.ts'],
  ])('refuses %s with a 400 naming the path', (_name, payload, code, path) => {
    const error = refusal(payload);
    expect(error.status).toBe(400);
    expect(error.code).toBe(code);
    expect(error.details).toContainEqual(expect.objectContaining({ path }));
  });

  it("checks the device type's schema: declared metrics, ranges, unknown metrics when not allowed", () => {
    const schema = { metrics: { t: { min: 0, max: 10, unit: 'V' } }, allowUnknownMetrics: false };
    expect(refusal({ metrics: { t: 11 } }, schema).details).toEqual([
      { path: 'metrics.t', code: 'above_max', message: '11 is above 10 V' },
    ]);
    expect(refusal({ metrics: { t: 1, u: 2 } }, schema).details).toEqual([
      expect.objectContaining({ path: 'metrics.u', code: 'unknown_metric' }),
    ]);
    expect(
      validateTelemetry({ metrics: { t: 1, u: 2 } }, policy, { ...schema, allowUnknownMetrics: true }, received, now),
    ).toHaveLength(1);
  });
});
