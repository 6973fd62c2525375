import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueName } from '../../support/services.js';
import { type Harness, startHarness, storedSamples, TYPES } from './harness.js';
import { type PrivateService, privateMongo, privateRedis } from './private-services.js';

// Stores that go away: 503 (retried by Knative), and afterwards every message stored exactly once.
describe('telemetry-ingest: MongoDB and Redis outages', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'kiot-outage-'));
  let mongo: PrivateService;
  let redis: PrivateService;
  let h: Harness;
  const device = uniqueName('dev');

  beforeAll(async () => {
    mongo = await privateMongo(dataDir);
    redis = await privateRedis();
    await Promise.all([mongo.start(), redis.start()]);
    h = await startHarness({ DEVICE_CACHE_TTL_MS: '0' }, { mongoUrl: mongo.url, redisUrl: redis.url });
    await h.addDevice(device);
  }, 120_000);

  afterAll(async () => {
    await h?.close();
    await mongo?.stop();
    await redis?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** What the router does: deliver again until the answer is 2xx (or a permanent 4xx). */
  async function deliverUntilAccepted(id: string, payload: unknown, statuses: number[]): Promise<void> {
    for (;;) {
      const status = (await h.send(TYPES.telemetry, device, payload, { id })).status;
      statuses.push(status);
      if (status < 300) return;
      // Never 409: telemetry holds no "in progress" mark (the samples' unique _id is its dedup).
      expect(status).toBe(503);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  async function until(condition: () => boolean): Promise<void> {
    while (!condition()) await new Promise((resolve) => setTimeout(resolve, 50));
  }

  const payloadOf = (i: number) =>
    i % 3 === 0 ? [{ metrics: { i } }, { metrics: { i: i + 0.5 } }] : { metrics: { i } };
  const expectedSamples = (n: number) =>
    Array.from({ length: n }, (_, i) => (i % 3 === 0 ? 2 : 1)).reduce((a, b) => a + b, 0);

  it('answers 503 while MongoDB is down and stores every message exactly once after it is back', async () => {
    const ids = Array.from({ length: 30 }, (_, i) => `${device}-m-${i}`);
    const statuses: number[] = [];
    // 10 stored, then MongoDB stops with 20 messages (5 at a time) still to come.
    for (const [i, id] of ids.slice(0, 10).entries()) await deliverUntilAccepted(id, payloadOf(i), statuses);
    await mongo.stop();
    const rest = ids.slice(10).map((id, j) => ({ id, i: j + 10 }));
    const workers = Array.from({ length: 5 }, async (_, w) => {
      for (const { id, i } of rest.filter((_, k) => k % 5 === w))
        await deliverUntilAccepted(id, payloadOf(i), statuses);
    });
    await until(() => statuses.filter((status) => status === 503).length >= 10); // every worker has met the outage
    await mongo.start();
    await Promise.all(workers);

    expect(statuses).toContain(503);
    const stored = await storedSamples(h, device);
    expect(stored).toHaveLength(expectedSamples(30));
    expect(new Set(stored.map((doc) => doc._id)).size).toBe(stored.length);
  }, 120_000);

  it('fails a batch with 503 while MongoDB is down; retried, each of its messages is stored once after it returns', async () => {
    // Five devices, so that no device's rate limit (100 at once) refuses any of the 100 messages.
    const batchDevices = Array.from({ length: 5 }, () => uniqueName('dev'));
    for (const id of batchDevices) await h.addDevice(id);
    const batchOf = (b: number) =>
      Array.from({ length: 20 }, (_, i) => ({
        id: `${batchDevices[0]}-b${b}-${i}`,
        subject: batchDevices[i % 5]!,
        time: new Date().toISOString(),
        datacontenttype: 'application/json',
        data: payloadOf(i),
      }));
    const statuses: number[] = [];
    const deliver = async (b: number) => {
      // What the router does with a batch: the same event again until a 2xx.
      for (;;) {
        const status = (await h.sendBatchData(batchOf(b), { id: `${batchDevices[0]}-batch-${b}` })).status;
        statuses.push(status);
        if (status < 300) return;
        expect(status).toBe(503);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };
    await deliver(0);
    await mongo.stop();
    const batches = Promise.all([1, 2, 3, 4].map(deliver));
    await until(() => statuses.filter((status) => status === 503).length >= 8);
    await mongo.start();
    await batches;

    expect(statuses).toContain(503);
    const stored = (await Promise.all(batchDevices.map((id) => storedSamples(h, id)))).flat();
    expect(stored).toHaveLength(5 * expectedSamples(20));
    expect(new Set(stored.map((doc) => doc._id)).size).toBe(stored.length);
  }, 120_000);

  it('charges no rate for a delivery that failed: retried through an outage, a device within its rate is never refused', async () => {
    // A second function on the same stores whose devices may send 2 messages, then one per ~17 minutes: any
    // token a failed attempt kept would refuse the message once MongoDB is back.
    const strict = await startHarness(
      { DEVICE_CACHE_TTL_MS: '0', RATE_LIMIT_PER_SECOND: '0.001', RATE_LIMIT_BURST: '2' },
      { mongoUrl: mongo.url, redisUrl: redis.url },
    );
    try {
      const calm = uniqueName('dev');
      await strict.addDevice(calm);
      const deliveries = [
        [TYPES.telemetry, `${calm}-t`, { metrics: { t: 1 } }],
        [TYPES.state, `${calm}-s`, { mode: 'eco' }],
      ] as const;
      await mongo.stop();
      const down: number[] = [];
      for (let attempt = 0; attempt < 3; attempt += 1)
        for (const [type, id, data] of deliveries) down.push((await strict.send(type, calm, data, { id })).status);
      expect(down).toEqual([503, 503, 503, 503, 503, 503]);
      await mongo.start();
      const statuses: number[] = [];
      for (const [type, id, data] of deliveries) {
        for (;;) {
          const status = (await strict.send(type, calm, data, { id })).status;
          statuses.push(status);
          if (status < 300) break;
          // A state report holds a dedup mark (its merge is not idempotent) and may meet its own as in progress.
          expect(type === TYPES.state ? [409, 503] : [503]).toContain(status);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
      expect(await storedSamples(strict, calm)).toHaveLength(1);
      const view = (await (await strict.get(`/devices/${calm}/state`)).json()) as { shadow: { reported: unknown } };
      expect(view.shadow.reported).toEqual({ mode: 'eco' });
    } finally {
      await strict.close();
    }
  }, 120_000);

  it('answers 503 while Redis is down; after a restart that lost every key, redeliveries are still stored once', async () => {
    const ids = Array.from({ length: 30 }, (_, i) => `${device}-m-${i}`);
    await redis.stop();
    const down = await h.send(TYPES.telemetry, device, { metrics: { late: 1 } }, { id: `${device}-late` });
    expect(down.status).toBe(503);
    await redis.start();
    const statuses: number[] = [];
    // The bridge lost its acknowledgements too: everything comes again, under the same ids.
    for (const [i, id] of ids.entries()) await deliverUntilAccepted(id, payloadOf(i), statuses);
    await deliverUntilAccepted(`${device}-late`, { metrics: { late: 1 } }, statuses);
    const stored = await storedSamples(h, device);
    expect(stored).toHaveLength(expectedSamples(30) + 1);
    expect(new Set(stored.map((doc) => doc._id)).size).toBe(stored.length);
  }, 120_000);
});
