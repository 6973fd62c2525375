import { describe, expect, it } from 'vitest';
import { fastBatchItem, fastSamples } from '../../../functions/telemetry-ingest/fast-parse.js';
import { telemetryPayloadSchema } from '../../../functions/telemetry-ingest/schema.js';
import { deviceIdSchema } from '../../../shared/devices.js';
import { isJsonContentType, telemetryBatchItemSchema } from '../../../shared/telemetry-batch.js';

// The fast paths must never accept what zod refuses, and must give zod's result when they accept: checked over
// every combination of field values (valid, near misses, wrong types), with the bridge's shapes among them.
const TIMES = [
  '2026-12-04T15:30:00.123Z',
  '2024-02-29T23:59:59.999Z',
  '2023-02-29T10:00:00.000Z',
  '2026-04-31T10:00:00.000Z',
  '2026-13-01T10:00:00.000Z',
  '2026-12-04T24:00:00.000Z',
  '2026-12-04T23:60:00.000Z',
  '2026-12-04T23:59:60.000Z',
  '2026-12-04T15:30:00Z',
  '2026-12-04T15:30:00.123+01:00',
  '2026-12-04T15:30:00.1234Z',
  '2026-12-04 15:30:00.123Z',
  '0000-01-01T00:00:00.000Z',
  '2000-02-29T00:00:00.000Z',
  '1900-02-29T00:00:00.000Z',
  '2100-02-29T00:00:00.000Z',
  '2400-02-29T12:00:00.000Z',
  '0050-01-01T00:00:00.000Z',
  '0100-03-01T00:00:00.000Z',
  '9999-12-31T23:59:59.999Z',
  '2026-00-10T00:00:00.000Z',
  '2026-06-00T00:00:00.000Z',
  '2026-06-30T00:00:00.000Z',
  '2026-06-31T00:00:00.000Z',
  '',
  1_733_000_000_000,
  undefined,
];
const IDS = ['e-1', 'x'.repeat(256), 'x'.repeat(257), '', 7, undefined];
const SUBJECTS = ['dev-1', 'd.e_v-2', 'x'.repeat(64), 'x'.repeat(65), 'dev 1', 'dév', '', null, undefined];
const CONTENT_TYPES = [
  undefined,
  'application/json',
  'application/cloudevents+json',
  'text/plain',
  'APPLICATION/JSON',
  5,
];

/** The message batch-route.ts builds from what zod accepts (its slow path). */
function zodItem(raw: unknown) {
  const item = telemetryBatchItemSchema.safeParse(raw);
  if (!item.success || !deviceIdSchema.safeParse(item.data.subject).success) return undefined;
  if (!isJsonContentType(item.data.datacontenttype)) return undefined;
  return {
    eventId: item.data.id,
    deviceId: item.data.subject,
    receivedAt: new Date(Date.parse(item.data.time)),
    payload: item.data.data,
  };
}

/** The receive time's Date as batch-route.ts makes it, with the epoch ms it was asked for kept. */
const asked: number[] = [];
const dateOf = (at: number) => {
  asked.push(at);
  return new Date(at);
};
const fastItem = (raw: unknown) => fastBatchItem(raw, dateOf);

describe('fastBatchItem', () => {
  it('accepts only items zod accepts, with zod’s reading of them', () => {
    let fast = 0;
    for (const time of TIMES)
      for (const id of IDS)
        for (const subject of SUBJECTS)
          for (const datacontenttype of CONTENT_TYPES) {
            const raw = { id, subject, time, datacontenttype, data: { metrics: { t: 1 } } };
            asked.length = 0;
            const answer = fastItem(raw);
            if (answer === undefined) continue;
            fast += 1;
            expect(zodItem(raw), JSON.stringify(raw)).toEqual(answer);
            // The Date is the one dateOf gave (batch-route.ts shares one between items of the same millisecond).
            expect(asked).toEqual([answer.receivedAt.getTime()]);
          }
    // The bridge's own shape takes the fast path.
    expect(fast).toBeGreaterThan(0);
    const bridge = { id: 'b-1', subject: 'dev-1', time: new Date().toISOString(), data: { ts: 1, metrics: { t: 1 } } };
    expect(fastItem(bridge)).toEqual(zodItem(bridge));
    expect(fastItem(bridge)).toStrictEqual(zodItem(bridge));
    for (const raw of [null, [], 'x', 1, { id: 'a', subject: 'b' }]) expect(fastItem(raw)).toBeUndefined();
  });

  it('reads each time on its own, whatever time came before (the last one is remembered)', () => {
    const item = (time: unknown) => fastItem({ id: 'a', subject: 'dev-1', time, data: 1 });
    // Each time read fresh: after a time of its own that no other item has.
    const fresh = new Map(
      TIMES.map((time) => {
        item(`not ${String(time)}`);
        return [time, item(time)] as const;
      }),
    );
    expect([...fresh.values()].some((answer) => answer !== undefined)).toBe(true);
    for (const before of TIMES)
      for (const time of [...TIMES, before]) {
        item(before);
        expect(item(time), `${before} then ${time}`).toEqual(fresh.get(time));
      }
  });
});

describe('fastSamples', () => {
  const limits = { maxSamples: 3, maxMetrics: 2 };
  const schema = (payload: unknown) => telemetryPayloadSchema(limits, payload);
  const TS = [undefined, 0, -1, 1_733_000_000_000, 8.64e15, 8.64e15 + 1, Number.NaN, '2026-12-04T15:30:00Z', null];
  const METRICS: unknown[] = [
    { t: 1 },
    { t: 1.5, h: -2 },
    { t: 1, h: 2, x: 3 },
    {},
    { t: Number.POSITIVE_INFINITY },
    { t: '1' },
    { '1t': 1 },
    { 'a.b': 1 },
    { _x: 0 },
    JSON.parse('{"__proto__": 1}'),
    [1],
    null,
    undefined,
  ];
  const MSG_IDS = [undefined, 'm-1', 'a:b.c_d-e', 'x'.repeat(128), 'x'.repeat(129), '', 'a b', 3];

  function compare(payload: unknown): boolean {
    const answer = fastSamples(payload, limits);
    if (answer === undefined) return false;
    const zod = schema(payload).safeParse(payload);
    expect(zod.success, JSON.stringify(payload)).toBe(true);
    expect(answer).toEqual(Array.isArray(zod.data) ? zod.data : [zod.data]);
    return true;
  }

  it('accepts only payloads zod accepts, one sample or a batch, with zod’s result', () => {
    let fast = 0;
    const samples: unknown[] = [];
    for (const ts of TS)
      for (const metrics of METRICS)
        for (const msgId of MSG_IDS) {
          const sample = { ts, metrics, msgId };
          samples.push(sample);
          if (compare(sample)) fast += 1;
        }
    expect(fast).toBeGreaterThan(0);
    expect(compare({ ts: 1, metrics: { t: 1 }, msgId: 'm', extra: 1 })).toBe(false);
    expect(compare({ metrics: { t: 1 } })).toBe(true);
    const good = { ts: 1, metrics: { t: 1 } };
    for (const sample of samples) expect(typeof compare([good, sample])).toBe('boolean');
    expect(compare([good, good, good])).toBe(true);
    expect(compare([good, good, good, good])).toBe(false);
    expect(compare([])).toBe(false);
    for (const payload of [null, 1, 'x', [null]]) expect(compare(payload)).toBe(false);
  });
});
