import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueName } from '../../support/services.js';
import { type Harness, startHarness, storedSamples } from './harness.js';

// Raw samples past TELEMETRY_RETENTION_DAYS go: a TTL index where the server has one, and a sweep.
describe('telemetry-ingest: retention', () => {
  let h: Harness;
  const device = uniqueName('dev');
  const day = 86_400_000;

  beforeAll(async () => {
    h = await startHarness({ TELEMETRY_RETENTION_DAYS: '7' });
  });
  afterAll(() => h.close());

  it('declares a TTL index on the sample time', async () => {
    const collection = (await h.mongo.db()).collection('telemetry');
    let indexes: { name?: string; expireAfterSeconds?: number }[] = [];
    for (let attempt = 0; attempt < 100 && !indexes.some((i) => i.name === 'ts_ttl'); attempt += 1) {
      indexes = await collection.indexes().catch(() => []);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(indexes).toContainEqual(expect.objectContaining({ name: 'ts_ttl', expireAfterSeconds: 7 * 86_400 }));
  });

  it('sweeps samples older than the retention on a PingSource event', async () => {
    const now = Date.now();
    const doc = (id: string, age: number) => ({
      _id: id,
      deviceId: device,
      ts: new Date(now - age),
      metrics: { v: 1 },
      eventId: id,
      receivedAt: new Date(now - age),
    });
    await (await h.mongo.db())
      .collection<{ _id: string }>('telemetry')
      .insertMany([doc('old-1', 8 * day), doc('old-2', 30 * day), doc('new-1', 6 * day)]);
    const answer = await h.send('dev.knative.sources.ping', 'telemetry-retention', { task: 'telemetry-retention' });
    expect(answer.status).toBe(204);
    expect((await storedSamples(h, device)).map((d) => d._id)).toEqual(['new-1']);
    expect(await (await fetch(`${h.base}/metrics`)).text()).toContain('kiot_telemetry_retention_removed_total 2');
  });
});
