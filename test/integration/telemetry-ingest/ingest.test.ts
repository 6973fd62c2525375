import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deviceStateSchema } from '../../../functions/telemetry-ingest/schema.js';
import { scanKeys } from '../../support/redis-keys.js';
import { uniqueName } from '../../support/services.js';
import { type Harness, startHarness, storedSamples, TYPES } from './harness.js';

// Telemetry over CloudEvents: stored once per event id (each sample's unique `_id` in MongoDB is the dedup), with
// the device's own timestamps.
describe('telemetry-ingest: storing telemetry', () => {
  let h: Harness;
  const device = uniqueName('dev');

  beforeAll(async () => {
    h = await startHarness();
    await h.addDevice(device);
  });
  afterAll(() => h.close());

  it('stores a single sample once when the same event is delivered twice', async () => {
    const id = uniqueName('ev');
    const ts = new Date(Date.now() - 60_000).toISOString();
    const first = await h.send(TYPES.telemetry, device, { ts, metrics: { temp: 21.5 } }, { id });
    const again = await h.send(TYPES.telemetry, device, { ts, metrics: { temp: 21.5 } }, { id });
    expect([first.status, again.status]).toEqual([204, 204]);
    const stored = (await storedSamples(h, device)).filter((doc) => doc.eventId === id);
    expect(stored).toHaveLength(1);
    expect(stored[0]).toMatchObject({ deviceId: device, metrics: { temp: 21.5 }, ts: new Date(ts) });
    const metrics = await (await fetch(`${h.base}/metrics`)).text();
    expect(metrics).toMatch(/kiot_telemetry_duplicates_total [1-9]/);
  });

  it('stores a batch once, out-of-order timestamps as sent, and serves them in time order', async () => {
    const other = uniqueName('dev');
    await h.addDevice(other);
    const base = Date.now() - 10 * 60_000;
    const batch = [
      { ts: base + 3_000, metrics: { temp: 3, hum: 30 } },
      { ts: new Date(base + 1_000).toISOString(), metrics: { temp: 1 } },
      { ts: base + 2_000, metrics: { hum: 20 } },
    ];
    const id = uniqueName('batch');
    // Concurrent redeliveries all insert: each sample is stored by one of them, and every one answers 204 (no
    // "in progress" 409 any more: nothing is marked in Redis).
    const answers = await Promise.all([1, 2, 3].map(() => h.send(TYPES.telemetry, other, batch, { id })));
    expect(answers.map((answer) => answer.status)).toEqual([204, 204, 204]);
    expect((await h.send(TYPES.telemetry, other, batch, { id })).status).toBe(204);
    const stored = await storedSamples(h, other);
    expect(stored.map((doc) => doc.ts.getTime())).toEqual([base + 1_000, base + 2_000, base + 3_000]);

    const page = (await (await h.get(`/devices/${other}/telemetry?from=${base}&limit=2`)).json()) as any;
    expect(page.items.map((item: { metrics: unknown }) => item.metrics)).toEqual([{ temp: 1 }, { hum: 20 }]);
    const rest = (await (
      await h.get(`/devices/${other}/telemetry?from=${base}&limit=2&cursor=${page.nextCursor}`)
    ).json()) as any;
    expect(rest.items).toEqual([{ ts: new Date(base + 3_000).toISOString(), metrics: { temp: 3, hum: 30 } }]);
    const humOnly = (await (await h.get(`/devices/${other}/telemetry?from=${base}&metric=hum`)).json()) as any;
    expect(humOnly.items.map((item: { metrics: unknown }) => item.metrics)).toEqual([{ hum: 20 }, { hum: 30 }]);

    // Every field of the shadow it serves is in the contract (OpenAPI says additionalProperties: false).
    const state = (await (await h.get(`/devices/${other}/state`)).json()) as any;
    expect(Object.keys(state.shadow).sort()).toEqual(Object.keys(deviceStateSchema.shape.shadow.shape).sort());
    expect(deviceStateSchema.parse(state).shadow.updatedAt).toBeNull();

    // An empty or out-of-range instant is refused, not read as the epoch (schemathesis found `to=` accepted).
    for (const bad of ['to=', 'from=', 'to=86400000000000001', 'from=-5', 'to=1e3']) {
      const refused = await h.get(`/devices/${other}/telemetry?${bad}`);
      expect(refused.status, bad).toBe(400);
    }
  });

  it('keeps no per-message key in Redis: the unique _id in MongoDB decides what is a duplicate', async () => {
    const id = uniqueName('ev');
    const payload = [{ metrics: { temp: 1 } }, { metrics: { temp: 2 } }];
    const duplicates = async () =>
      Number(/kiot_telemetry_duplicates_total (\d+)/.exec(await (await fetch(`${h.base}/metrics`)).text())?.[1] ?? 0);
    const before = await duplicates();
    expect((await h.send(TYPES.telemetry, device, payload, { id })).status).toBe(204);
    const client = await h.redis.client();
    expect(await scanKeys(client, `${h.config.REDIS_PREFIX}:{${device}}:event:*`)).toEqual([]);
    expect((await h.send(TYPES.telemetry, device, payload, { id })).status).toBe(204);
    expect((await storedSamples(h, device)).filter((doc) => doc.eventId === id)).toHaveLength(2);
    expect(await duplicates()).toBe(before + 1);
  });

  it('answers a redelivery over the rate as the duplicate it is, and charges no rate for a stored message', async () => {
    // Two messages at once, then one per ~17 minutes; every refusal is told (no notice interval).
    const strict = await startHarness({
      RATE_LIMIT_PER_SECOND: '0.001',
      RATE_LIMIT_BURST: '2',
      RATE_LIMIT_NOTICE_INTERVAL_MS: '0',
    });
    try {
      const calm = uniqueName('dev');
      await strict.addDevice(calm);
      const [m1, m2, m3] = [uniqueName('m1'), uniqueName('m2'), uniqueName('m3')];
      const send = (id: string) => strict.send(TYPES.telemetry, calm, { metrics: { n: 1 } }, { id });
      expect((await send(m1)).status).toBe(204); // one token left
      // A redelivery of a stored message draws a token and gets it back: still one left, so m2 is admitted.
      expect((await send(m1)).status).toBe(204);
      expect((await send(m2)).status).toBe(204); // the bucket is empty now
      // Over the rate, but stored: a duplicate (looked up by _id), not refused, not told.
      expect((await send(m1)).status).toBe(204);
      expect((await send(m2)).status).toBe(204);
      // A new message is refused: the bucket really is empty.
      expect((await send(m3)).status).toBe(422);
      expect((await storedSamples(strict, calm)).map((doc) => doc.eventId).sort()).toEqual([m1, m2].sort());
      await strict.sink.waitFor(() => strict.notices(calm).length > 0);
      expect(strict.notices(calm)).toEqual([expect.objectContaining({ code: 'rate_limited', eventId: m3 })]);
    } finally {
      await strict.close();
    }
  });

  it('treats a msgId and ts the device repeats under a new event id as the same sample', async () => {
    const msgId = uniqueName('m');
    const ts = Date.now() - 1_000;
    expect((await h.send(TYPES.telemetry, device, { ts, metrics: { temp: 5 }, msgId })).status).toBe(204);
    expect((await h.send(TYPES.telemetry, device, { ts, metrics: { temp: 5 }, msgId })).status).toBe(204);
    expect((await storedSamples(h, device)).filter((doc) => doc.msgId === msgId)).toHaveLength(1);
  });

  it('stores a msgId repeated with a new ts, or without ts, again: a restarted counter is new data', async () => {
    const msgId = uniqueName('m');
    const ts = Date.now() - 5_000;
    expect((await h.send(TYPES.telemetry, device, { ts, metrics: { temp: 5 }, msgId })).status).toBe(204);
    expect((await h.send(TYPES.telemetry, device, { ts: ts + 1, metrics: { temp: 6 }, msgId })).status).toBe(204);
    expect((await h.send(TYPES.telemetry, device, { metrics: { temp: 7 }, msgId })).status).toBe(204);
    expect((await h.send(TYPES.telemetry, device, { metrics: { temp: 8 }, msgId })).status).toBe(204);
    const temps = (await storedSamples(h, device)).filter((doc) => doc.msgId === msgId).map((doc) => doc.metrics.temp);
    expect(temps.sort()).toEqual([5, 6, 7, 8]);
  });

  it('coalesces concurrent events into few inserts and acknowledges each one', async () => {
    const busy = uniqueName('dev');
    await h.addDevice(busy);
    const answers = await Promise.all(
      Array.from({ length: 50 }, (_, i) => h.send(TYPES.telemetry, busy, { metrics: { n: i } })),
    );
    expect(answers.map((a) => a.status)).toEqual(Array(50).fill(204));
    expect(await storedSamples(h, busy)).toHaveLength(50);
    const metrics = await (await fetch(`${h.base}/metrics`)).text();
    const batches = Number(/kiot_telemetry_group_commit_docs_count (\d+)/.exec(metrics)?.[1]);
    const docs = Number(/kiot_telemetry_group_commit_docs_sum (\d+)/.exec(metrics)?.[1]);
    expect(docs / batches).toBeGreaterThan(1);
  });
});
