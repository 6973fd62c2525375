import { afterAll, describe, expect, it } from 'vitest';
import { commandDispatchConfigSchema } from '../../functions/command-dispatch/config.js';
import { configSchema as telemetryIngestConfigSchema } from '../../functions/telemetry-ingest/config.js';
import { ConflictError, PreconditionFailedError } from '../../shared/errors.js';
import { createMongo } from '../../shared/mongo.js';
import { createRedis } from '../../shared/redis.js';
import { applyDesired, applyReport, emptyShadow, type Shadow } from '../../shared/shadow.js';
import {
  createShadowStore,
  SHADOWS_COLLECTION,
  type ShadowStore,
  shadowKey,
  updateShadow,
} from '../../shared/shadow-store.js';
import { MONGODB_URL, REDIS_URL, uniqueName } from '../support/services.js';

// The contract of the one shadow store (shared/shadow.ts) that both writers use: telemetry-ingest merges
// reports, command-dispatch desires. Each writer has its own store instance (as each deployable does) on
// the same Redis prefix and the same MongoDB database.
describe('shared/shadow.ts: one shadow, two writers', () => {
  const redis = createRedis(REDIS_URL);
  const mongo = createMongo(
    MONGODB_URL,
    uniqueName('shadow')
      .replace(/[^A-Za-z0-9_-]/g, '_')
      .slice(0, 60),
  );
  const prefix = uniqueName('ti');
  const limits = { maxBytes: 8192, maxDepth: 6 };
  const reports = createShadowStore(redis, mongo, prefix);
  const desires = createShadowStore(redis, mongo, prefix);
  const report = (store: ShadowStore, id: string, patch: Record<string, unknown>, at: number) =>
    updateShadow(store, id, (s) => applyReport(s, patch, at, limits));
  const hash = async (id: string) => (await redis.client()).hgetall(shadowKey(prefix, id));
  const durable = async (id: string) => (await mongo.db()).collection(SHADOWS_COLLECTION).findOne({ _id: id as never });

  afterAll(async () => {
    await (await mongo.db()).dropDatabase();
    await Promise.all([mongo.close(), redis.close()]);
  });

  it('both deployables default to the same Redis prefix for the shadow hash', () => {
    const telemetryIngest = telemetryIngestConfigSchema.shape.REDIS_PREFIX.parse(undefined);
    expect(commandDispatchConfigSchema.shape.SHADOW_REDIS_PREFIX.parse(undefined)).toBe(telemetryIngest);
  });

  it('interleaves reports and desired updates with one version line, in Redis and in MongoDB', async () => {
    const id = uniqueName('dev');
    const reported = await report(reports, id, { led: 'off', fw: 1 }, 1_000);
    expect(reported).toMatchObject({
      version: 1,
      reported: { led: 'off', fw: 1 },
      timestamps: { reported: { '/led': 1_000, '/fw': 1_000 } },
    });
    const desired = await updateShadow(desires, id, (s) => applyDesired(s, { led: 'on' }, 2_000, limits), {
      ifMatch: 1,
    });
    expect(desired).toMatchObject({ version: 2, delta: { led: 'on' }, reported: { led: 'off', fw: 1 } });
    expect(await reports.load(id)).toEqual(desired);
    // The next report shrinks the delta; the desired side sees it.
    const next = await report(reports, id, { led: 'on' }, 3_000);
    expect(next).toMatchObject({ version: 3, delta: {}, updatedAt: new Date(3_000).toISOString() });
    expect(await desires.load(id)).toEqual(next);

    // The layout: hash fields `v` and `doc`; a MongoDB document with `_id` = device id, persisted before the return.
    expect(await hash(id)).toEqual({ v: '3', doc: JSON.stringify(next) });
    const { deviceId, ...fields } = next;
    expect(await durable(id)).toEqual({ _id: deviceId, ...fields });
  });

  it('rebuilds from MongoDB on a Redis miss, warms Redis, and writes nothing for a device without a shadow', async () => {
    const id = uniqueName('dev');
    const stored = await report(reports, id, { pos: 10 }, 1_000);
    await (await redis.client()).del(shadowKey(prefix, id));
    expect(await desires.load(id)).toEqual(stored);
    expect(await reports.load(id)).toEqual(stored);
    expect((await hash(id)).v).toBe('1');

    const unknown = uniqueName('ghost');
    expect(await reports.load(unknown)).toEqual(emptyShadow(unknown));
    expect(await hash(unknown)).toEqual({});
    expect(await durable(unknown)).toBeNull();
  });

  it('loses no update when both writers and several callers change one device at once', async () => {
    const id = uniqueName('dev');
    await Promise.all([
      ...Array.from({ length: 10 }, (_, i) => report(i % 2 === 0 ? reports : desires, id, { [`r${i}`]: i }, 1_000 + i)),
      ...Array.from({ length: 6 }, (_, i) =>
        updateShadow(i % 2 === 0 ? desires : reports, id, (s) => applyDesired(s, { [`d${i}`]: i }, 2_000 + i, limits)),
      ),
    ]);
    const shadow = await reports.load(id);
    expect(shadow.version).toBe(16);
    expect(Object.keys(shadow.reported)).toHaveLength(10);
    expect(Object.keys(shadow.desired)).toHaveLength(6);
    expect(await durable(id)).toMatchObject({ version: 16 });
  });

  it('refuses a stale If-Match with 412 and leaves the shadow as it was', async () => {
    const id = uniqueName('dev');
    await report(reports, id, { a: 1 }, 1_000);
    const stale = updateShadow(desires, id, (s) => applyDesired(s, { a: 2 }, 2_000, limits), { ifMatch: 0 });
    await expect(stale).rejects.toBeInstanceOf(PreconditionFailedError);
    await expect(stale).rejects.toMatchObject({ status: 412, details: { version: 1 } });
    expect((await desires.load(id)).version).toBe(1);
  });

  it('writes nothing when the change throws (a report over the size limit)', async () => {
    const id = uniqueName('dev');
    await report(reports, id, { a: 1 }, 1_000);
    const tooBig = updateShadow(reports, id, (s) =>
      applyReport(s, { blob: 'x'.repeat(100) }, 2_000, { maxBytes: 64, maxDepth: 6 }),
    );
    await expect(tooBig).rejects.toMatchObject({ status: 400, code: 'shadow_too_large' });
    expect(await reports.load(id)).toMatchObject({ version: 1, reported: { a: 1 } });
    expect(await durable(id)).toMatchObject({ version: 1 });
  });

  it('gives up with 409 when every commit loses, and never moves MongoDB or Redis back to an older version', async () => {
    const id = uniqueName('dev');
    const newer = await report(reports, id, { a: 2 }, 2_000);
    // A store whose commits always lose (another instance is always faster).
    const losing: ShadowStore = { ...reports, commit: async () => false };
    await expect(
      updateShadow(losing, id, (s) => applyReport(s, { a: 3 }, 3_000, limits), { attempts: 2 }),
    ).rejects.toBeInstanceOf(ConflictError);
    const older: Shadow = { ...newer, version: 1, reported: { a: 1 } };
    expect(await reports.commit(older, 0)).toBe(false);
    await reports.cache(older);
    expect(await durable(id)).toMatchObject({ version: 1, reported: { a: 2 } });
    expect(await hash(id)).toEqual({ v: '1', doc: JSON.stringify(newer) });
  });

  it('loses no acknowledged change when the hot copy is behind (a Redis failover lost its last write)', async () => {
    const id = uniqueName('dev');
    const first = await report(reports, id, { a: 1 }, 1_000);
    await report(reports, id, { b: 2 }, 2_000);
    // What an asynchronous replica promoted by a failover holds: the version before the last one.
    await (await redis.client()).hset(shadowKey(prefix, id), 'v', '1', 'doc', JSON.stringify(first));

    const next = await report(desires, id, { c: 3 }, 3_000);
    expect(next).toMatchObject({ version: 3, reported: { a: 1, b: 2, c: 3 } });
    expect(await durable(id)).toMatchObject({ version: 3, reported: { a: 1, b: 2, c: 3 } });
    expect(await reports.load(id)).toEqual(next);
    // An If-Match of the durable version is honoured though the hot copy was behind.
    await (await redis.client()).hset(shadowKey(prefix, id), 'v', '1', 'doc', JSON.stringify(first));
    const desired = await updateShadow(desires, id, (s) => applyDesired(s, { d: 4 }, 4_000, limits), { ifMatch: 3 });
    expect(desired).toMatchObject({ version: 4, reported: { a: 1, b: 2, c: 3 }, desired: { d: 4 } });
  });
});
