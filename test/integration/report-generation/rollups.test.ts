import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Stats } from '../../../functions/report-generation/stats.js';
import { type Harness, startHarness } from './harness.js';
import { quarter, random, type SampleDoc, storeDevices, storeSamples } from './telemetry-fixtures.js';

const HOUR = 3_600_000;
const DAY = 86_400_000;
const T0 = Date.UTC(2026, 2, 1); // three days of data from here

/** What a rollup must hold, computed here from the raw documents. */
type Expected = Stats;

/**
 * The brute force: from every stored document, independently of the code under test. A sample is one
 * device and sample time; when several documents share it, their metrics are merged in `_id` order (the
 * later `_id` wins a metric both carry).
 */
function bruteForce(stored: SampleDoc[], level: number): Map<string, Record<string, Expected>> {
  const samples = new Map<string, { deviceId: string; ts: number; metrics: Record<string, number> }>();
  for (const doc of [...stored].sort((a, b) => (a._id < b._id ? -1 : 1))) {
    const key = `${doc.deviceId}|${doc.ts.getTime()}`;
    const known = samples.get(key) ?? { deviceId: doc.deviceId, ts: doc.ts.getTime(), metrics: {} };
    Object.assign(known.metrics, doc.metrics);
    samples.set(key, known);
  }
  const out = new Map<string, Record<string, Expected>>();
  for (const s of samples.values()) {
    const key = `${s.deviceId}|${new Date(Math.floor(s.ts / level) * level).toISOString()}`;
    const metrics = out.get(key) ?? {};
    for (const [name, v] of Object.entries(s.metrics)) {
      const e = metrics[name];
      if (!e) {
        metrics[name] = { count: 1, sum: v, min: v, max: v, first: v, firstTs: s.ts, last: v, lastTs: s.ts };
        continue;
      }
      e.count += 1;
      e.sum += v;
      e.min = Math.min(e.min, v);
      e.max = Math.max(e.max, v);
      if (s.ts < e.firstTs) [e.first, e.firstTs] = [v, s.ts];
      if (s.ts > e.lastTs) [e.last, e.lastTs] = [v, s.ts];
    }
    out.set(key, metrics);
  }
  return out;
}

describe('rollups', { timeout: 120_000 }, () => {
  let h: Harness;
  const devices = ['rd-a', 'rd-b', 'rd-c'];
  const stored: SampleDoc[] = [];
  const rand = random(42);

  /** Samples every ~2-7 minutes with gaps (a device silent for hours), repeats and shuffled order. */
  function generate(from: number, to: number, tag: string): SampleDoc[] {
    const docs: SampleDoc[] = [];
    for (const deviceId of devices) {
      for (let ts = from; ts < to; ts += Math.floor(120_000 + rand() * 300_000)) {
        if (deviceId === 'rd-b' && ts % DAY > 5 * HOUR && ts % DAY < 9 * HOUR) continue; // a gap every night
        const metrics: Record<string, number> = { temp: quarter(rand, -10, 40) };
        if (rand() < 0.7) metrics.hum = quarter(rand, 20, 90); // not every sample carries every metric
        const msgId = `${tag}-${ts}`;
        const doc: SampleDoc = {
          _id: `${deviceId}~${msgId}`,
          deviceId,
          ts: new Date(ts),
          metrics,
          eventId: `ev-${deviceId}-${msgId}`,
          receivedAt: h.now(),
          msgId,
        };
        docs.push(doc);
        if (rand() < 0.05) docs.push({ ...doc }); // a redelivery: the same _id, dropped by the store
        if (rand() < 0.03)
          docs.push({
            ...doc,
            _id: `ev-x-${deviceId}-${ts}#0`,
            msgId: undefined,
            metrics: { temp: quarter(rand, -10, 40) },
          }); // same sample time, another message
      }
    }
    // Out of order: stored shuffled, so insertion order says nothing about sample time.
    for (let i = docs.length - 1; i > 0; i -= 1) {
      const j = Math.floor(rand() * (i + 1));
      [docs[i], docs[j]] = [docs[j]!, docs[i]!];
    }
    return docs;
  }

  async function rollupDocs(level: 'hour' | 'day') {
    const docs = await (await h.mongo.db()).collection('rollups').find({ level }).toArray();
    const out = new Map<string, Record<string, Expected>>();
    for (const doc of docs) {
      const metrics: Record<string, Expected> = {};
      for (const [name, s] of Object.entries(
        doc.metrics as Record<string, Expected & { firstTs: Date; lastTs: Date; avg: number }>,
      )) {
        expect(s.avg).toBe(s.sum / s.count);
        metrics[name] = {
          count: s.count,
          sum: s.sum,
          min: s.min,
          max: s.max,
          first: s.first,
          firstTs: s.firstTs.getTime(),
          last: s.last,
          lastTs: s.lastTs.getTime(),
        };
      }
      out.set(`${doc.deviceId}|${(doc.start as Date).toISOString()}`, metrics);
    }
    return out;
  }

  async function expectRollupsMatch() {
    expect(await rollupDocs('hour')).toEqual(bruteForce(stored, HOUR));
    expect(await rollupDocs('day')).toEqual(bruteForce(stored, DAY));
  }

  const run = async () => {
    // Each run a few minutes after the one before, further apart than the ingest lateness it looks back.
    h.advance(5 * 60_000);
    const response = await h.request('POST', '/rollups/run');
    expect(response.status).toBe(200);
    return (await response.json()) as { hours: number; days: number };
  };

  beforeAll(async () => {
    h = await startHarness('rg-rollups');
    await storeDevices(
      h.mongo,
      devices.map((id) => ({ id })),
    );
  });
  afterAll(async () => h?.close());

  it('equal a brute-force computation over data with gaps, repeats and out-of-order samples', async () => {
    stored.push(...(await storeSamples(h.mongo, generate(T0, T0 + 3 * DAY, 'm'), h.now())));
    const first = await run();
    expect(first.hours).toBeGreaterThan(150);
    await expectRollupsMatch();
  });

  it('re-running changes nothing and recomputes nothing when no data arrived', async () => {
    const before = await (await h.mongo.db())
      .collection('rollups')
      .find({}, { projection: { computedAt: 0 } })
      .sort({ _id: 1 })
      .toArray();
    // The first re-run looks back over the ingest lateness and recomputes the same hours to the same values;
    // the next finds nothing new at all.
    await run();
    const again = await run();
    expect(again).toMatchObject({ hours: 0, days: 0 });
    const after = await (await h.mongo.db())
      .collection('rollups')
      .find({}, { projection: { computedAt: 0 } })
      .sort({ _id: 1 })
      .toArray();
    expect(after).toEqual(before);
  });

  it('late data re-opens only its hours and days, and the result still equals the brute force', async () => {
    // Late: samples for hours of the first day (and an hour that had none), arriving now.
    const late = generate(T0 + 2 * HOUR, T0 + 3 * HOUR, 'late').concat(generate(T0 + 6 * HOUR, T0 + 7 * HOUR, 'late2'));
    // Events retried for a long time keep their old event time (`receivedAt`): dirty hours are found by
    // ingestion time (`ingestedAt`), not by it.
    for (const doc of late) doc.receivedAt = new Date(doc.ts.getTime() + 1_000);
    stored.push(...(await storeSamples(h.mongo, late, h.now())));
    const result = await run();
    const lateHours = new Set(late.map((d) => `${d.deviceId}|${Math.floor(d.ts.getTime() / HOUR)}`));
    expect(result.hours).toBe(lateHours.size);
    expect(result.days).toBe(new Set(late.map((d) => d.deviceId)).size);
    await expectRollupsMatch();
  });

  it('runs on the ping tick of the rollups PingSource', async () => {
    stored.push(...(await storeSamples(h.mongo, generate(T0 + 3 * DAY, T0 + 3 * DAY + 2 * HOUR, 'ping'), h.now())));
    const response = await fetch(h.base, {
      method: 'POST',
      headers: {
        'ce-specversion': '1.0',
        'ce-id': 'ping-1',
        'ce-source': '/apis/v1/namespaces/kiot/pingsources/report-rollups',
        'ce-type': 'dev.knative.sources.ping',
        'ce-kiottask': 'rollups',
        'content-type': 'application/json',
      },
      body: '{"task":"rollups"}',
    });
    expect(response.status).toBe(204);
    await expectRollupsMatch();
  });
});
