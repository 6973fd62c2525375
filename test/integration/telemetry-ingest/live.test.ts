import type { EventSourceMessage } from 'eventsource-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLiveFeed, type LiveBatch, type LiveMessage } from '../../../functions/telemetry-ingest/live-feed.js';
import { redisKeys } from '../../../functions/telemetry-ingest/redis-keys.js';
import { createLogger } from '../../../shared/logger.js';
import { createRedis } from '../../../shared/redis.js';
import { channelsOf } from '../../../shared/redis-pubsub.js';
import { REDIS_URL, uniqueName } from '../../support/services.js';
import { openStream } from '../../support/sse.js';
import { type Harness, startHarness, TYPES } from './harness.js';

const samplesOf = (events: EventSourceMessage[]) =>
  events
    .filter((e) => e.event === 'samples')
    .flatMap((e) => JSON.parse(e.data) as { ts: string; metrics: Record<string, number> }[]);

async function until<T>(probe: () => Promise<T | undefined>, what: string): Promise<T> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

// The live side of the fleet overview and of a device page: streams of stored samples through Redis pub/sub,
// presence counted in the fleet index, messages per second, alerts acknowledged.
describe('telemetry-ingest: live streams and fleet figures', () => {
  let h: Harness;
  let other: Harness;

  beforeAll(async () => {
    h = await startHarness({ LIVE_HEARTBEAT_SECONDS: '1' });
    // A second replica on the same stores: a browser's stream may be held by either.
    other = await startHarness({
      REDIS_PREFIX: h.config.REDIS_PREFIX,
      MONGODB_DB: h.config.MONGODB_DB,
      API_KEYS: JSON.stringify(h.config.API_KEYS),
    });
  });
  afterAll(async () => {
    await other?.close();
    await h?.close();
  });

  it('streams a device’s samples once stored, whichever replica stored them, and only that device’s', async () => {
    const device = uniqueName('chart');
    const neighbour = uniqueName('chart');
    await h.addDevice(device);
    await h.addDevice(neighbour);
    const first = await openStream(`${h.base}/devices/${device}/telemetry/stream`, h.apiKey);
    const second = await openStream(`${other.base}/devices/${device}/telemetry/stream`, h.apiKey);
    expect([first.status, second.status]).toEqual([200, 200]);
    await first.waitFor((events) => events.some((e) => e.event === 'ready'), 'ready');
    await second.waitFor((events) => events.some((e) => e.event === 'ready'), 'ready');

    const t0 = Date.now() - 10_000;
    expect((await other.send(TYPES.telemetry, device, { ts: t0, metrics: { temp: 20.5 } })).status).toBe(204);
    expect((await other.send(TYPES.telemetry, neighbour, { ts: t0, metrics: { temp: 99 } })).status).toBe(204);
    const batch = await h.sendBatch([
      {
        subject: device,
        data: [
          { ts: t0 + 2_000, metrics: { temp: 21 } },
          { ts: t0 + 1_000, metrics: { temp: 22, rh: 40 } },
        ],
      },
      { subject: neighbour, data: { ts: t0 + 1_000, metrics: { temp: 98 } } },
    ]);
    expect(batch.status).toBe(204);

    for (const stream of [first, second]) {
      await stream.waitFor((events) => samplesOf(events).length >= 3, 'three samples');
      expect(samplesOf(stream.events)).toEqual([
        { ts: new Date(t0).toISOString(), metrics: { temp: 20.5 } },
        // One publication per stored batch, in time order.
        { ts: new Date(t0 + 1_000).toISOString(), metrics: { temp: 22, rh: 40 } },
        { ts: new Date(t0 + 2_000).toISOString(), metrics: { temp: 21 } },
      ]);
    }
    first.close();
    // The other stream still hears the device after the first left.
    expect((await h.send(TYPES.telemetry, device, { ts: t0 + 3_000, metrics: { temp: 23 } })).status).toBe(204);
    await second.waitFor((events) => samplesOf(events).length === 4, 'the fourth sample');
    second.close();

    expect((await h.get(`/devices/${uniqueName('nobody')}/telemetry/stream`)).status).toBe(404);
    expect((await fetch(`${h.base}/devices/${device}/telemetry/stream`)).status).toBe(401);
  });

  it('publishes only the devices a hub watches: a subscriber without the mark hears nothing', async () => {
    const device = uniqueName('watched');
    const unseen = uniqueName('unseen');
    await h.addDevice(device);
    await h.addDevice(unseen);
    const keys = redisKeys(h.config.REDIS_PREFIX);
    const redis = createRedis(REDIS_URL);
    const subscriber = createRedis(REDIS_URL, { shardedSubscriber: true });
    try {
      const client = await redis.client();
      const redisNow = async () => Number((await client.time())[0]);
      const channels = channelsOf(await subscriber.client());
      const heard: { samples: { metrics: Record<string, number> }[] }[] = [];
      channels.onMessage((_channel, text) => heard.push(JSON.parse(text)));
      await channels.subscribe(keys.live(device));
      expect((await h.send(TYPES.telemetry, device, { metrics: { n: 1 } })).status).toBe(204);
      // A mark that has run out (the presence hash's `watched` field: until when, Redis seconds) publishes nothing.
      await client.hset(keys.presence(device), 'watched', (await redisNow()) - 1);
      expect((await h.send(TYPES.telemetry, device, { metrics: { n: 2 } })).status).toBe(204);
      // Marked as a hub marks it: the next sample is published. One channel's messages arrive in order, so had an
      // earlier one been published it would be heard first.
      await client.hset(keys.presence(device), 'watched', (await redisNow()) + 60);
      expect((await h.send(TYPES.telemetry, device, { metrics: { n: 3 } })).status).toBe(204);
      await until(async () => (heard.length > 0 ? true : undefined), 'the watched sample');
      expect(heard.map((message) => message.samples.map((sample) => sample.metrics.n))).toEqual([[3]]);
      // A hub's listener sets the mark before it subscribes.
      await client.hdel(keys.presence(device), 'watched');
      const stream = await openStream(`${h.base}/devices/${device}/telemetry/stream`, h.apiKey);
      await stream.waitFor((events) => events.some((e) => e.event === 'ready'), 'ready');
      expect(Number(await client.hget(keys.presence(device), 'watched'))).toBeGreaterThan(await redisNow());
      expect(await client.ttl(keys.presence(device))).toBeGreaterThan(3600);
      stream.close();
      // A device never seen: its hash holds only the mark, and goes with it rather than staying.
      const other = await openStream(`${h.base}/devices/${unseen}/telemetry/stream`, h.apiKey);
      await other.waitFor((events) => events.some((e) => e.event === 'ready'), 'ready');
      expect(await client.ttl(keys.presence(unseen))).toBeGreaterThan(0);
      expect(await client.ttl(keys.presence(unseen))).toBeLessThanOrEqual(60);
      expect(
        ((await (await h.get(`/devices/${unseen}/state`)).json()) as { presence: { status: string } }).presence.status,
      ).toBe('unknown');
      other.close();
    } finally {
      await subscriber.close();
      await redis.close();
    }
  });

  it('publishes a sample whose mark a hub set after the admission read the marks, once the hub changed the epoch', async () => {
    const device = uniqueName('late-mark');
    const keys = redisKeys(h.config.REDIS_PREFIX);
    const redis = createRedis(REDIS_URL);
    const subscriber = createRedis(REDIS_URL, { shardedSubscriber: true });
    const feed = createLiveFeed(redis, keys, createLogger('test-live', 'silent'));
    try {
      const client = await redis.client();
      const heard: LiveMessage[] = [];
      const channels = channelsOf(await subscriber.client());
      channels.onMessage((_channel, text) => heard.push(JSON.parse(text) as LiveMessage));
      await channels.subscribe(keys.live(device));
      // A batch whose admission call found the device unwatched (its `watched` set empty), sent under `epoch`.
      const batch = (n: number, epoch: string | undefined): LiveBatch => ({
        devices: [device],
        samplesOf: (watched) => (watched.has(device) ? [{ deviceId: device, ts: new Date(), metrics: { n } }] : []),
        watched: new Set(),
        epoch,
      });
      feed.stored(batch(0, undefined), 1, Date.now());
      const known = await until(async () => feed.epoch(), 'the epoch read after an insert');
      // Marked after the admission read the marks, the epoch unchanged (as no hub does it): not read again.
      await client.hset(keys.presence(device), 'watched', Number((await client.time())[0]) + 60);
      // (Counted in a second of its own: once its count is there, its epoch read, pipelined before it, was made.)
      const second = 1_000_000 + Math.floor(Math.random() * 1_000_000);
      feed.stored(batch(1, known), 1, second * 1000);
      await until(async () => ((await client.get(keys.rate(second))) === '1' ? true : undefined), 'batch 1 counted');
      // A hub changes the epoch after its mark: a batch admitted under the old one reads the marks again.
      await client.set(keys.watchEpoch, `test:${device}`);
      feed.stored(batch(2, known), 1, Date.now());
      await until(async () => (heard.length > 0 ? true : undefined), 'the late-marked sample');
      expect(heard.map((message) => message.samples.map((sample) => sample.metrics.n))).toEqual([[2]]);
      expect(feed.epoch()).toBe(`test:${device}`);
    } finally {
      await subscriber.close();
      await redis.close();
    }
  });

  it('counts devices online by event time, lists them, and reads presence for many ids at once', async () => {
    const a = uniqueName('pres');
    const b = uniqueName('pres');
    await h.addDevice(a);
    await h.addDevice(b);
    type Summary = { online: number; messagesPerSecond: number; rate: { messages: number }[]; openAlerts: number };
    const summary = async () => (await (await h.get('/telemetry-summary')).json()) as Summary;
    const base = (await summary()).online;
    const now = Date.now();
    expect((await h.send(TYPES.connected, a, {}, { time: new Date(now - 5_000).toISOString() })).status).toBe(204);
    expect((await h.send(TYPES.connected, b, {}, { time: new Date(now - 4_000).toISOString() })).status).toBe(204);
    expect((await summary()).online).toBe(base + 2);
    // b disconnects; its late, older connect (a retry) must not bring it back, in the index as in its hash.
    expect((await h.send(TYPES.disconnected, b, {}, { time: new Date(now - 1_000).toISOString() })).status).toBe(204);
    expect((await h.send(TYPES.connected, b, {}, { time: new Date(now - 2_000).toISOString() })).status).toBe(204);
    expect((await summary()).online).toBe(base + 1);

    // The most recently connected first, page by page.
    const page1 = (await (await h.get('/presence?status=online&limit=1')).json()) as {
      items: { deviceId: string; status: string }[];
      nextOffset: number | null;
    };
    expect(page1.items).toHaveLength(1);
    expect(page1.nextOffset).toBe(base > 0 ? 1 : null);
    const all = (await (await h.get('/presence?status=online&limit=500')).json()) as typeof page1;
    expect(all.items).toHaveLength(base + 1);
    expect(all.items).toContainEqual(expect.objectContaining({ deviceId: a, status: 'online' }));
    expect(all.items.map((p) => p.deviceId)).not.toContain(b);
    const many = (await (await h.get(`/presence?ids=${b},${a}`)).json()) as {
      items: { deviceId: string; status: string }[];
    };
    expect(many.items.map((p) => [p.deviceId, p.status])).toEqual([
      [b, 'offline'],
      [a, 'online'],
    ]);
    const onlineOfThem = (await (await h.get(`/presence?ids=${b},${a}&status=online`)).json()) as typeof many;
    expect(onlineOfThem.items.map((p) => p.deviceId)).toEqual([a]);
    // A message proves b online again.
    expect((await h.send(TYPES.telemetry, b, { metrics: { temp: 1 } })).status).toBe(204);
    expect((await summary()).online).toBe(base + 2);
    // Without a filter: who is online now, as with status=online.
    const unfiltered = (await (await h.get('/presence?limit=500')).json()) as typeof page1;
    expect(unfiltered.items.map((p) => p.deviceId)).toEqual(expect.arrayContaining([a, b]));
    expect(unfiltered.items).toHaveLength(base + 2);
    expect((await h.get('/presence?status=offline')).status).toBe(400);
    // A parameter of one value given twice is refused, not read as its first (schemathesis ST201, session 11).
    const twice = await h.get('/presence?offset=&offset=3');
    expect(twice.status).toBe(400);
    expect(((await twice.json()) as { error: { code: string } }).error.code).toBeDefined();
  });

  it('counts messages stored per second over the last minute', async () => {
    const device = uniqueName('rate');
    await h.addDevice(device);
    const before = (await (await h.get('/telemetry-summary')).json()) as any;
    const beforeTotal = (before.rate as { messages: number }[]).reduce((sum, s) => sum + s.messages, 0);
    const messages = Array.from({ length: 12 }, (_, i) => ({ subject: device, data: { metrics: { n: i } } }));
    expect((await h.sendBatch(messages)).status).toBe(204);
    // The current second is counted once it is over.
    const after = await until(async () => {
      const body = (await (await h.get('/telemetry-summary')).json()) as any;
      const total = (body.rate as { messages: number }[]).reduce((sum, s) => sum + s.messages, 0);
      return total >= beforeTotal + 12 ? body : undefined;
    }, 'the batch in the per-second counts');
    expect(after.rate).toHaveLength(60);
    expect(after.messagesPerSecond).toBeGreaterThan(0);
    // Each second's counter expires (its EXPIRE goes with the process's first batch of that second, not every one).
    expect((await h.sendBatch(messages.slice(0, 2))).status).toBe(204);
    expect((await h.sendBatch(messages.slice(2, 4))).status).toBe(204);
    const keys = redisKeys(h.config.REDIS_PREFIX);
    const redis = createRedis(REDIS_URL);
    try {
      const client = await redis.client();
      const now = Math.floor(Date.now() / 1000);
      const ttls = await Promise.all(Array.from({ length: 70 }, (_, i) => client.ttl(keys.rate(now + 2 - i))));
      const counters = ttls.filter((ttl) => ttl !== -2);
      expect(counters.length).toBeGreaterThan(0);
      for (const ttl of counters) expect(ttl).toBeGreaterThan(0);
    } finally {
      await redis.close();
    }
  });

  it('acknowledges an alert once, names the key, and counts open alerts', async () => {
    const device = uniqueName('hot');
    await h.addDevice(device);
    const api = (method: string, path: string, body?: unknown) =>
      fetch(`${h.base}${path}`, {
        method,
        headers: { authorization: h.apiKey, ...(body ? { 'content-type': 'application/json' } : {}) },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
    const openBefore = ((await (await h.get('/telemetry-summary')).json()) as any).openAlerts as number;
    await api('POST', '/alert-rules', { deviceId: device, metric: 'temp', comparison: '>', threshold: 50 });
    expect((await h.send(TYPES.telemetry, device, { metrics: { temp: 60 } })).status).toBe(204);
    const alert = await until(async () => {
      const page = (await (await api('GET', `/alerts?deviceId=${device}&status=active`)).json()) as { items: any[] };
      return page.items[0];
    }, 'the alert');
    expect(alert).toMatchObject({ acknowledgedAt: null, acknowledgedBy: null });
    expect(((await (await h.get('/telemetry-summary')).json()) as any).openAlerts).toBe(openBefore + 1);
    const acked = await api('POST', `/alerts/${encodeURIComponent(alert.id)}/acknowledge`);
    expect(acked.status).toBe(200);
    const first = (await acked.json()) as any;
    expect(first).toMatchObject({ id: alert.id, acknowledgedBy: 'tester', acknowledgedAt: expect.any(String) });
    const again = (await (await api('POST', `/alerts/${encodeURIComponent(alert.id)}/acknowledge`)).json()) as any;
    expect(again.acknowledgedAt).toBe(first.acknowledgedAt);
    expect((await api('POST', '/alerts/nope/acknowledge')).status).toBe(404);
  });
});
