import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDeviceAuthenticator } from '../../shared/device-auth.js';
import { createDeviceDirectory, DEVICES_COLLECTION, type DeviceDocument } from '../../shared/devices.js';
import { createMongo } from '../../shared/mongo.js';
import { hashSecret, verifySecret } from '../../shared/secrets.js';
import { MONGODB_URL, uniqueName } from '../support/services.js';

// The in-process device caches against the real store: bounded LRU caches with a TTL. When full they drop
// the least recently used entry, never everything; an entry is served until its TTL, then read again.
describe('device caches: bounded LRU with a TTL', () => {
  const mongo = createMongo(
    MONGODB_URL,
    uniqueName('devcache')
      .replace(/[^A-Za-z0-9_-]/g, '_')
      .slice(0, 60),
  );
  const devices = async () => (await mongo.db()).collection<DeviceDocument>(DEVICES_COLLECTION);
  const ids = ['a', 'b', 'c'].map((letter) => uniqueName(`cache-${letter}`));
  const secret = 'a-device-secret-0123456789abcdef';
  let clock = 1_000_000;
  const now = () => clock;

  beforeAll(async () => {
    const hash = await hashSecret(secret, { N: 2 ** 10 });
    const at = new Date();
    await (await devices()).insertMany(
      ids.map((id) => ({
        _id: id,
        tags: [],
        metadata: {},
        status: 'active' as const,
        credential: { hash, rotatedAt: at },
        createdAt: at,
        updatedAt: at,
        version: 1,
      })),
    );
  });
  afterAll(async () => {
    await (await mongo.db()).dropDatabase();
    await mongo.close();
  });
  const disable = async (id: string) =>
    (await devices()).updateOne({ _id: id }, { $set: { status: 'disabled' }, $inc: { version: 1 } });
  const enableAll = async () => (await devices()).updateMany({ _id: { $in: ids } }, { $set: { status: 'active' } });

  it('the directory evicts the least recently used device and keeps the rest until their TTL', async () => {
    await enableAll();
    const [a, b, c] = ids as [string, string, string];
    const directory = createDeviceDirectory(mongo, { ttlMs: 5_000, maxEntries: 2, now });
    await directory.device(a);
    await directory.device(b);
    await directory.device(a); // a is now the most recently used
    await disable(a);
    await disable(b);
    expect((await directory.device(c))?.status).toBe('active'); // the third entry evicts b only
    expect((await directory.device(a))?.status).toBe('active'); // still cached: not emptied when full
    expect((await directory.device(b))?.status).toBe('disabled'); // evicted, so read again
    clock += 5_001;
    expect((await directory.device(a))?.status).toBe('disabled'); // expired, so read again
  });

  it('a batch lookup past half the TTL answers from the entry and reads the device again in the background', async () => {
    await enableAll();
    const [a] = ids as [string];
    const directory = createDeviceDirectory(mongo, { ttlMs: 5_000, now });
    expect((await directory.devices([a])).get(a)?.status).toBe('active');
    await disable(a);
    clock += 2_000; // less than half: the entry answers, nothing is read
    expect((await directory.devices([a])).get(a)?.status).toBe('active');
    clock += 1_000; // past half: still the entry's answer, and a refresh starts
    expect((await directory.devices([a])).get(a)?.status).toBe('active');
    await expect.poll(async () => (await directory.devices([a])).get(a)?.status).toBe('disabled');
    clock += 4_000; // the refreshed entry is younger than the TTL: no wait for MongoDB, its answer holds
    expect((await directory.devices([a])).get(a)?.status).toBe('disabled');
  });

  it('remembers an unknown device as unknown for the TTL, and a TTL of 0 caches nothing', async () => {
    const [, , c] = ids as [string, string, string];
    const absent = uniqueName('cache-absent');
    const directory = createDeviceDirectory(mongo, { ttlMs: 5_000, now });
    expect(await directory.device(absent)).toBeUndefined();
    await (await devices()).insertOne({ ...(await (await devices()).findOne({ _id: c }))!, _id: absent });
    expect(await directory.device(absent)).toBeUndefined();
    clock += 5_001;
    expect((await directory.device(absent))?.id).toBe(absent);

    await enableAll();
    const uncached = createDeviceDirectory(mongo, { ttlMs: 0, now });
    expect((await uncached.device(c))?.status).toBe('active');
    await disable(c);
    expect((await uncached.device(c))?.status).toBe('disabled');
  });

  it('device auth pays scrypt again only for the device its full cache let go', async () => {
    await enableAll();
    const [a, b] = ids as [string, string, string];
    const verified: string[] = [];
    const auth = createDeviceAuthenticator(
      mongo,
      async (presented, stored) => {
        verified.push(presented);
        return verifySecret(presented, stored);
      },
      { ttlMs: 5_000, maxEntries: 2, now },
    );
    const basic = (id: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
    await auth.authenticate(a, basic(a));
    await auth.authenticate(b, basic(b));
    await auth.authenticate(a, basic(a));
    expect(verified).toHaveLength(2);
    await auth.authenticate(ids[2]!, basic(ids[2]!)); // full: evicts b, the least recently used
    await auth.authenticate(a, basic(a));
    expect(verified).toHaveLength(3);
    await auth.authenticate(b, basic(b));
    expect(verified).toHaveLength(4);
    clock += 5_001;
    await auth.authenticate(a, basic(a));
    expect(verified).toHaveLength(5);
  });
});
