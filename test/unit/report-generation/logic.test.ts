import { describe, expect, it } from 'vitest';
import { csvField, csvRecord } from '../../../functions/report-generation/csv.js';
import { planBuckets } from '../../../functions/report-generation/generate-report.js';
import { escapeHtml } from '../../../functions/report-generation/html/escape.js';
import { lineChart, niceTicks, timeTicks } from '../../../functions/report-generation/html/svg-chart.js';
import { buildReport } from '../../../functions/report-generation/report-model.js';
import { windows } from '../../../functions/report-generation/run-rollups.js';
import { nextPeriodEnd } from '../../../functions/report-generation/run-schedules.js';
import { planSegments } from '../../../functions/report-generation/series-reader.js';
import { dedupeSamples, mergeStats, statsOf, statsOfSamples } from '../../../functions/report-generation/stats.js';
import {
  alignRange,
  autoInterval,
  DAY_MS,
  HOUR_MS,
  MINUTE_MS,
  seriesWidth,
} from '../../../functions/report-generation/time.js';

const T = Date.UTC(2026, 0, 1);
const range = (ms: number) => ({ from: new Date(T), to: new Date(T + ms) });

describe('intervals', () => {
  it('chooses the finest interval within the point budget, coarser as the fleet grows', () => {
    const cases: [number, number, string][] = [
      [6 * HOUR_MS, 1, '1m'],
      [DAY_MS, 1, '5m'],
      [30 * DAY_MS, 1, '1h'],
      [365 * DAY_MS, 1, '1d'],
      [DAY_MS, 1_000, '1h'],
      [7 * DAY_MS, 1_000, '1d'],
    ];
    for (const [ms, devices, interval] of cases)
      expect(autoInterval(range(ms), devices), `${ms} ${devices}`).toBe(interval);
  });

  it('widens ranges to whole buckets and picks series widths that respect the point limit', () => {
    expect(alignRange({ from: new Date(T + 90 * MINUTE_MS), to: new Date(T + 150 * MINUTE_MS) }, HOUR_MS)).toEqual({
      from: new Date(T + HOUR_MS),
      to: new Date(T + 3 * HOUR_MS),
    });
    for (const points of [2, 10, 100, 500, 5_000]) {
      for (const ms of [HOUR_MS, DAY_MS, 30 * DAY_MS, 400 * DAY_MS]) {
        const width = seriesWidth(range(ms), points);
        const aligned = alignRange(range(ms), width);
        expect((aligned.to.getTime() - aligned.from.getTime()) / width).toBeLessThanOrEqual(points);
      }
    }
    expect(seriesWidth(range(365 * DAY_MS), 500)).toBe(DAY_MS);
  });

  it('keeps a range that reaches the end of time within the Dates JavaScript can hold', () => {
    // Schemathesis: from=0020-02-29T00:00:00Z&to=8639999999999999 rounded `to` up past 8.64e15 → Invalid Date → 500.
    const endOfTime = { from: new Date('0020-02-29T00:00:00Z'), to: new Date(8_639_999_999_999_999) };
    for (const width of [MINUTE_MS, HOUR_MS, DAY_MS, seriesWidth(endOfTime, 500)]) {
      const aligned = alignRange(endOfTime, width);
      expect(aligned.to.toISOString()).toMatch(/^\+275\d{3}-/);
      expect(aligned.to.getTime()).toBeGreaterThan(8.64e15 - width);
      expect(aligned.from.getTime()).toBeLessThanOrEqual(endOfTime.from.getTime());
    }
  });

  it('refuses raw over long ranges and reports that would exceed the row limit', () => {
    expect(() => planBuckets({ ...range(8 * DAY_MS), interval: 'raw', metrics: ['a'] }, 1, 1e6)).toThrow(/7 days/);
    expect(() => planBuckets({ ...range(365 * DAY_MS), interval: '1m', metrics: ['a'] }, 10, 1e6)).toThrow(/rows/);
    expect(planBuckets({ ...range(DAY_MS), metrics: ['a'] }, 1, 1e6)).toMatchObject({
      interval: '5m',
      width: 5 * MINUTE_MS,
    });
  });
});

describe('segments', () => {
  it('reads daily rollups, then hourly, then raw after the rollups watermark', () => {
    const fresh = T + 10 * DAY_MS + 5 * HOUR_MS + 20 * MINUTE_MS;
    expect(planSegments(T, T + 11 * DAY_MS, DAY_MS, fresh)).toEqual([
      { source: 'day', from: T, to: T + 10 * DAY_MS },
      { source: 'hour', from: T + 10 * DAY_MS, to: T + 10 * DAY_MS + 5 * HOUR_MS },
      { source: 'raw', from: T + 10 * DAY_MS + 5 * HOUR_MS, to: T + 11 * DAY_MS },
    ]);
    expect(planSegments(T, T + DAY_MS, HOUR_MS, T + 2 * DAY_MS)).toEqual([{ source: 'hour', from: T, to: T + DAY_MS }]);
    expect(planSegments(T, T + DAY_MS, 5 * MINUTE_MS, T + 2 * DAY_MS)).toEqual([
      { source: 'raw', from: T, to: T + DAY_MS },
    ]);
    expect(planSegments(T, T + DAY_MS, DAY_MS, 0)).toEqual([{ source: 'raw', from: T, to: T + DAY_MS }]);
  });

  it('groups marked hours into bounded read windows', () => {
    const marks = [
      { deviceId: 'b', hour: T + 2 * HOUR_MS },
      { deviceId: 'a', hour: T },
      { deviceId: 'a', hour: T + 40 * DAY_MS },
    ];
    expect(windows(marks)).toEqual([
      { deviceIds: ['a', 'b'], from: new Date(T), to: new Date(T + 3 * HOUR_MS) },
      { deviceIds: ['a'], from: new Date(T + 40 * DAY_MS), to: new Date(T + 40 * DAY_MS + HOUR_MS) },
    ]);
  });
});

describe('statistics', () => {
  it('merges associatively with first/last by sample time, whatever the order', () => {
    const parts = [statsOf(5, 30), statsOf(1, 10), statsOf(9, 20), statsOf(2, 40)];
    const forward = parts.reduce(mergeStats);
    const backward = [...parts].reverse().reduce(mergeStats);
    expect(forward).toEqual(backward);
    expect(forward).toEqual({ count: 4, sum: 17, min: 1, max: 9, first: 1, firstTs: 10, last: 2, lastTs: 40 });
  });

  it('counts a sample time once, the later stored value winning, and skips non-numbers', () => {
    const samples = dedupeSamples([
      { ts: new Date(20), metrics: { a: 1 } },
      { ts: new Date(10), metrics: { a: 7, b: 1 } },
      { ts: new Date(20), metrics: { a: 3 } },
    ]);
    expect(samples.map((s) => [s.ts.getTime(), s.metrics])).toEqual([
      [10, { a: 7, b: 1 }],
      [20, { a: 3 }],
    ]);
    expect(statsOfSamples([...samples, { ts: new Date(30), metrics: { a: Number.NaN } }]).get('a')).toMatchObject({
      count: 2,
      sum: 10,
      first: 7,
      last: 3,
    });
  });

  it('builds sparse device series, merged fleet series and the online ratio', () => {
    const rows = [
      { deviceId: 'b', metric: 'm', bucket: T + HOUR_MS, stats: statsOf(4, T + HOUR_MS) },
      { deviceId: 'a', metric: 'm', bucket: T, stats: statsOf(2, T) },
      { deviceId: 'b', metric: 'm', bucket: T, stats: statsOf(6, T + 1) },
    ];
    const built = buildReport(rows, {
      deviceIds: ['a', 'b', 'c'],
      metrics: ['m'],
      from: T,
      to: T + 2 * HOUR_MS,
      width: HOUR_MS,
    });
    expect(built.series.map((s) => `${s.kind}:${s.deviceId ?? ''}:${s.points.length}`)).toEqual([
      'fleet::2',
      'device:a:1',
      'device:b:2',
    ]);
    expect(built.series[0]!.points[0]).toMatchObject({ count: 2, min: 2, max: 6, sum: 8 });
    expect(built.metrics.m).toEqual({ count: 3, min: 2, max: 6, avg: 4 });
    expect(built.onlineRatio).toBe(3 / 6);
    expect(built.devicesReporting).toBe(2);
  });
});

describe('formats', () => {
  it('quotes CSV fields per RFC 4180 and ends records with CRLF', () => {
    expect(csvField('plain')).toBe('plain');
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField('two\nlines')).toBe('"two\nlines"');
    expect(csvRecord(['x', 0.1 + 0.2, -0])).toBe('x,0.30000000000000004,0\r\n');
  });

  it('escapes markup and draws gaps as breaks in the line', () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
    const points = [0, 1, 2, 6, 7].map((h) => ({ t: T + h * HOUR_MS, avg: h, min: h - 1, max: h + 1 }));
    const svg = lineChart(points, { title: 'a <b>', bucketMs: HOUR_MS, from: T, to: T + 8 * HOUR_MS });
    const line = /class="line" d="([^"]+)"/.exec(svg)![1]!;
    expect(line.match(/M/g)).toHaveLength(2);
    expect(svg).toContain('a &lt;b&gt;');
    expect(svg).not.toContain('<script');
    expect(lineChart([], { title: 't', bucketMs: HOUR_MS, from: T, to: T + HOUR_MS })).toContain('no samples');
    expect(lineChart([points[0]!], { title: 't', bucketMs: HOUR_MS, from: T, to: T + HOUR_MS })).toContain('<circle');
  });

  it('puts axis ticks on round values and round UTC times', () => {
    expect(niceTicks(0.3, 9.7)).toEqual([2, 4, 6, 8]);
    expect(niceTicks(42, 77.75)).toEqual([50, 60, 70]);
    expect(timeTicks(T, T + 3 * DAY_MS)).toEqual({
      ticks: [0, 1, 2, 3, 4, 5, 6].map((i) => T + i * 12 * HOUR_MS),
      step: 12 * HOUR_MS,
    });
  });
});

describe('schedules', () => {
  it('end daily periods at 00:00 UTC and weekly ones on Monday 00:00 UTC', () => {
    const wednesday = Date.UTC(2026, 0, 7, 13, 30);
    expect(new Date(nextPeriodEnd('daily', wednesday)).toISOString()).toBe('2026-01-08T00:00:00.000Z');
    expect(new Date(nextPeriodEnd('weekly', wednesday)).toISOString()).toBe('2026-01-12T00:00:00.000Z');
    expect(new Date(nextPeriodEnd('weekly', Date.UTC(2026, 0, 12))).toISOString()).toBe('2026-01-19T00:00:00.000Z');
    expect(new Date(nextPeriodEnd('daily', Date.UTC(2026, 0, 8))).toISOString()).toBe('2026-01-09T00:00:00.000Z');
  });
});
