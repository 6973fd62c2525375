import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AdmissionPolicy, createAdmissionGate } from '../../../functions/telemetry-ingest/admission.js';
import { redisKeys } from '../../../functions/telemetry-ingest/redis-keys.js';
import { createRedis, type RedisHandle } from '../../../shared/redis.js';
import { REDIS_URL, uniqueName } from '../../support/services.js';

// The admission call groups a batch's items by device (one argument per device) and answers in that order: the
// gate puts every answer back in the place of its item. These batches interleave devices, repeat them, send
// times out of order and ahead of now, so that an answer in the wrong place or a bucket judged in the wrong order
// shows.
describe('telemetry-ingest admission: a batch over several devices, interleaved', () => {
  let redis: RedisHandle;
  const policy: AdmissionPolicy = {
    ratePerSecond: 1,
    burst: 2,
    noticeIntervalMs: 60_000,
    dedupTtlSeconds: 600,
    pendingTtlSeconds: 60,
    presenceTtlSeconds: 600,
  };
  const gateOf = (keys: ReturnType<typeof redisKeys>) =>
    createAdmissionGate(redis, keys, policy, { index: async () => undefined });

  beforeAll(() => {
    redis = createRedis(REDIS_URL);
  });
  afterAll(() => redis.close());

  it('judges each device over its own items in their order and answers in the order of the items', async () => {
    const keys = redisKeys(uniqueName('adm'));
    const gate = gateOf(keys);
    const [a, b, c] = [uniqueName('a'), uniqueName('b'), uniqueName('c')];
    const now = Date.now();
    const at = (ms: number) => new Date(now - 10_000 + ms);
    const items = [
      { deviceId: a, eventId: '1', receivedAt: at(0) },
      { deviceId: b, eventId: '1', receivedAt: at(0) },
      { deviceId: a, eventId: '2', receivedAt: at(0) },
      { deviceId: c, eventId: '1', receivedAt: at(0) },
      // a's bucket is empty: limited (a second to wait at 1/s), then an older message takes no refill either.
      { deviceId: a, eventId: '3', receivedAt: at(0) },
      { deviceId: b, eventId: '2', receivedAt: at(500) },
      { deviceId: a, eventId: '4', receivedAt: at(-5_000) },
      // 1.5 s later a has refilled one and a half tokens: one message in, the next out.
      { deviceId: a, eventId: '5', receivedAt: at(1_500) },
      { deviceId: a, eventId: '6', receivedAt: at(1_500) },
      { deviceId: b, eventId: '3', receivedAt: at(500) },
    ];
    const { admissions, watched } = await gate.admit(items, now, new Set([a, b]));
    expect(admissions.map((admission) => admission.kind)).toEqual([
      'admitted',
      'admitted',
      'admitted',
      'admitted',
      'limited',
      'admitted',
      'limited',
      'admitted',
      'limited',
      'limited',
    ]);
    // The first refusal of a device is told; its wait is what its bucket lacks at its rate.
    expect(admissions[4]).toEqual({ kind: 'limited', retryAfterMs: 1_000, notify: true });
    expect(admissions[6]).toEqual({ kind: 'limited', retryAfterMs: 1_000, notify: false });
    // Half a token short (rounded up to the millisecond, whatever the float arithmetic leaves over).
    const halfToken = { kind: 'limited', retryAfterMs: expect.toSatisfy((ms: number) => ms >= 500 && ms <= 501) };
    expect(admissions[8]).toEqual({ ...halfToken, notify: false });
    // b: two tokens at 0, half a token back by 500 ms (1.5 → 0.5 after the second): the third waits 500 ms.
    expect(admissions[9]).toEqual({ ...halfToken, notify: true });
    expect(watched).toEqual(new Set());

    const client = await redis.client();
    const [ha, hb, hc] = await Promise.all([a, b, c].map((id) => client.hgetall(keys.presence(id))));
    // Marked seen at the newest receive time of their messages; c was not in `seen`: a bucket and no presence.
    expect(ha).toMatchObject({ status: 'online', lastSeen: String(at(1_500).getTime()) });
    expect(Number(ha!.tokens)).toBeCloseTo(0.5);
    expect(ha!.tokensAt).toBe(String(at(1_500).getTime()));
    expect(hb).toMatchObject({ status: 'online', lastSeen: String(at(500).getTime()) });
    expect(hc).toMatchObject({ tokens: '1', tokensAt: String(at(0).getTime()) });
    expect(hc!.status).toBeUndefined();
    expect(await client.pttl(keys.presence(c))).toBeGreaterThan(0);
  });

  it('counts a time ahead of now as now, and answers the watched devices by name', async () => {
    const keys = redisKeys(uniqueName('adm'));
    const gate = gateOf(keys);
    const [a, b] = [uniqueName('a'), uniqueName('b')];
    const client = await redis.client();
    const [seconds] = await client.time();
    await client.hset(keys.presence(b), 'watched', String(Number(seconds) + 60));
    const now = Date.now();
    const ahead = new Date(now + 60_000);
    const { admissions, watched } = await gate.admit(
      [
        { deviceId: b, eventId: '1', receivedAt: ahead },
        { deviceId: a, eventId: '1', receivedAt: ahead },
      ],
      now,
      new Set([a, b]),
    );
    expect(admissions).toEqual([{ kind: 'admitted' }, { kind: 'admitted' }]);
    expect(watched).toEqual(new Set([b]));
    const hash = await client.hgetall(keys.presence(a));
    // The bucket's clock is now; presence keeps the time the message came with.
    expect(hash).toMatchObject({ tokens: '1', tokensAt: String(now), lastSeen: String(ahead.getTime()) });
  });

  it('with marks: an event twice in one call is a duplicate, each answer in its place', async () => {
    const keys = redisKeys(uniqueName('adm'));
    const gate = gateOf(keys);
    const [a, b] = [uniqueName('a'), uniqueName('b')];
    const now = Date.now();
    const answers = await gate.admitOnce(
      [
        { deviceId: a, eventId: 'x', receivedAt: new Date(now) },
        { deviceId: b, eventId: 'x', receivedAt: new Date(now) },
        { deviceId: a, eventId: 'x', receivedAt: new Date(now) },
        { deviceId: a, eventId: 'y', receivedAt: new Date(now) },
        { deviceId: a, eventId: 'z', receivedAt: new Date(now) },
      ],
      now,
    );
    expect(answers.map((answer) => answer.kind)).toEqual(['admitted', 'admitted', 'duplicate', 'admitted', 'limited']);
    const client = await redis.client();
    // The limited event's mark is gone (its redelivery is judged afresh); the admitted ones are in progress.
    expect(await client.exists(keys.dedup(a, 'z'))).toBe(0);
    expect(await client.exists(keys.dedup(a, 'y'))).toBe(1);
    expect(await client.exists(keys.dedup(b, 'x'))).toBe(1);
    expect(await gate.admitOnce([{ deviceId: b, eventId: 'x' }], Date.now())).toEqual([{ kind: 'in_progress' }]);
  });
});
