import { afterAll, describe, expect, it } from 'vitest';
import { createMongo } from '../../../shared/mongo.js';
import { createRedis } from '../../../shared/redis.js';
import { applyDesired, createShadowStore, shadowKey, updateShadow } from '../../../shared/shadow.js';
// telemetry-ingest's own shadow code: the test (not the product) reads it, to prove both sides share one layout.
import { redisKeys } from '../../../functions/telemetry-ingest/redis-keys.js';
import { createShadowRepository } from '../../../functions/telemetry-ingest/shadow-repository.js';
import { applyReport } from '../../../functions/telemetry-ingest/shadow.js';
import { MONGODB_URL, REDIS_URL, uniqueName } from '../../support/services.js';
import { dbNameFor } from './harness.js';

// One shadow, two writers: telemetry-ingest merges reports, command-dispatch (shared/shadow.ts) desires.
describe('shared/shadow.ts and telemetry-ingest read and write the same shadow', () => {
  const redis = createRedis(REDIS_URL);
  const mongo = createMongo(MONGODB_URL, dbNameFor('shadow'));
  const prefix = uniqueName('ti');
  const limits = { maxBytes: 8192, maxDepth: 6 };
  const ours = createShadowStore(redis, mongo, prefix);
  const theirs = createShadowRepository(redis, mongo, redisKeys(prefix));

  afterAll(async () => {
    await (await mongo.db()).dropDatabase();
    await Promise.all([mongo.close(), redis.close()]);
  });

  it('interleaves reports and desired updates with one version line, in Redis and in MongoDB', async () => {
    const id = uniqueName('dev');
    // telemetry-ingest: a report.
    const reported = applyReport(await theirs.load(id), { led: 'off', fw: 1 }, 1_000, limits);
    expect(await theirs.compareAndSet(reported, 0)).toBe(true);
    await theirs.persist(reported);
    // command-dispatch: a desired update on top, seen by telemetry-ingest.
    const desired = await updateShadow(ours, id, (s) => applyDesired(s, { led: 'on' }, 2_000, limits), { ifMatch: 1 });
    expect(desired).toMatchObject({ version: 2, delta: { led: 'on' }, reported: { led: 'off', fw: 1 } });
    const seen = await theirs.load(id);
    expect(seen).toEqual(desired);
    // The next report shrinks the delta on telemetry-ingest's side.
    const next = applyReport(seen, { led: 'on' }, 3_000, limits);
    expect(next.delta).toEqual({});
    expect(await theirs.compareAndSet(next, 2)).toBe(true);
    await theirs.persist(next);
    expect(await ours.load(id)).toEqual(next);

    // A lost Redis: both rebuild the same shadow from MongoDB.
    await (await redis.client()).del(shadowKey(prefix, id));
    expect(await ours.load(id)).toEqual(next);
    expect(await theirs.load(id)).toEqual(next);
  });
});
