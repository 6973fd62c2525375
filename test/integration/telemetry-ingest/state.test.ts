import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueName } from '../../support/services.js';
import { type Harness, startHarness, TYPES } from './harness.js';

// The device shadow (merge, version, delta, timestamps, recovery from MongoDB) and presence.
describe('telemetry-ingest: shadow and presence', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness({ SHADOW_MAX_BYTES: '256', SHADOW_MAX_DEPTH: '3' });
  });
  afterAll(() => h.close());

  const state = async (deviceId: string) => (await (await h.get(`/devices/${deviceId}/state`)).json()) as any;

  it('merges reports (JSON merge patch), counts versions and stamps each leaf', async () => {
    const device = uniqueName('lamp');
    await h.addDevice(device);
    const t1 = new Date(Date.now() - 2_000).toISOString();
    const t2 = new Date(Date.now() - 1_000).toISOString();
    expect(
      (await h.send(TYPES.state, device, { power: 'on', net: { rssi: -60, ssid: 'home' }, tags: [1, 2] }, { time: t1 }))
        .status,
    ).toBe(204);
    expect(
      (await h.send(TYPES.state, device, { net: { rssi: -70, ssid: null }, tags: [3] }, { time: t2 })).status,
    ).toBe(204);
    const view = await state(device);
    expect(view.shadow).toMatchObject({ reported: { power: 'on', net: { rssi: -70 }, tags: [3] }, version: 2 });
    expect(view.shadow.timestamps.reported).toEqual({
      '/power': Date.parse(t1),
      '/net/rssi': Date.parse(t2),
      '/tags': Date.parse(t2),
    });
    expect(view.presence).toMatchObject({ status: 'online', lastSeen: t2 });
  });

  it('stores a redelivered report once (the version does not move)', async () => {
    const device = uniqueName('lamp');
    await h.addDevice(device);
    const id = uniqueName('ev');
    await h.send(TYPES.state, device, { mode: 'eco' }, { id });
    await h.send(TYPES.state, device, { mode: 'eco' }, { id });
    expect((await state(device)).shadow.version).toBe(1);
  });

  it('merges concurrent reports of one device without losing any', async () => {
    const device = uniqueName('lamp');
    await h.addDevice(device);
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) => h.send(TYPES.state, device, { [`k${i}`]: i })),
    );
    expect(answers.map((a) => a.status)).toEqual(Array(12).fill(204));
    const view = await state(device);
    expect(view.shadow.version).toBe(12);
    expect(Object.keys(view.shadow.reported)).toHaveLength(12);
  });

  it('refuses $ and . keys, too deep and too big with 400 and a notice', async () => {
    const device = uniqueName('lamp');
    await h.addDevice(device);
    const cases: [unknown, string][] = [
      [{ $set: { a: 1 } }, 'invalid_state'],
      [{ a: { 'b.c': 1 } }, 'invalid_state'],
      [{ a: { b: { c: { d: 1 } } } }, 'invalid_state'],
      [{ blob: 'x'.repeat(300) }, 'shadow_too_large'],
      [[1, 2], 'invalid_state'],
    ];
    for (const [patch, code] of cases) {
      const id = uniqueName('bad');
      const answer = await h.send(TYPES.state, device, patch, { id });
      expect(answer.status).toBe(400);
      expect(h.notices(device)).toContainEqual(expect.objectContaining({ code, eventId: id }));
    }
    expect((await state(device)).shadow.version).toBe(0);
  });

  it.each([
    ['a number JSON cannot carry back', '{"power":1e999}', 'non_finite_number', 'power'],
    ['a prototype key', '{"__proto__":{"admin":true}}', 'prototype_key', '__proto__'],
    ['a nested constructor key', '{"net":{"constructor":{"prototype":{"x":1}}}}', 'prototype_key', 'net.constructor'],
    ['a prototype key', '{"prototype":1}', 'prototype_key', 'prototype'],
    ['a lone surrogate', '{"name":"\\udc01"}', 'invalid_unicode', 'name'],
  ])('refuses a report with %s (%s) with 400 and a notice; nothing changes', async (_name, text, code, path) => {
    const device = uniqueName('lamp');
    await h.addDevice(device);
    await h.send(TYPES.state, device, { power: 'on' });
    const before = (await state(device)).shadow;
    const id = uniqueName('bad');
    const answer = await h.send(TYPES.state, device, undefined, { id, rawData: text });
    expect(answer.status).toBe(400);
    expect(await answer.json()).toMatchObject({ error: { code: 'invalid_state', details: [{ path, code }] } });
    expect(h.notices(device)).toContainEqual(expect.objectContaining({ code: 'invalid_state', eventId: id }));
    expect((await state(device)).shadow).toEqual(before);
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
  });

  it('rebuilds the shadow from MongoDB when Redis lost it, and computes the delta to desired', async () => {
    const device = uniqueName('valve');
    await h.addDevice(device);
    await h.send(TYPES.state, device, { open: false, pos: 10 });
    // command-dispatch owns `desired`; here it is written straight into the durable copy.
    await (await h.mongo.db())
      .collection('shadows')
      .updateOne({ _id: device as any }, { $set: { desired: { open: true, pos: 10 } } });
    await (await h.redis.client()).del(`${h.config.REDIS_PREFIX}:{${device}}:shadow`);
    expect((await state(device)).shadow).toMatchObject({
      version: 1,
      reported: { open: false, pos: 10 },
      desired: { open: true },
    });
    await h.send(TYPES.state, device, { pos: 20 });
    const view = await state(device);
    expect(view.shadow).toMatchObject({
      version: 2,
      reported: { open: false, pos: 20 },
      delta: { open: true, pos: 10 },
    });
    const durable = await (await h.mongo.db()).collection('shadows').findOne({ _id: device as any });
    expect(durable).toMatchObject({ version: 2, reported: { pos: 20 } });
  });

  it('tracks presence from connect and disconnect by event time, whatever the delivery order', async () => {
    const device = uniqueName('tracker');
    await h.addDevice(device);
    const start = Date.now() - 60_000;
    const at = (s: number) => new Date(start + s * 1_000).toISOString();
    expect((await state(device)).presence.status).toBe('unknown');
    expect((await h.send(TYPES.connected, device, { status: 'online' }, { time: at(1) })).status).toBe(204);
    expect((await state(device)).presence).toMatchObject({ status: 'online', since: at(1), connectedAt: at(1) });
    await h.send(TYPES.disconnected, device, { status: 'offline' }, { time: at(3) });
    // A connect that was delayed (older than the disconnect) and an old message do not revive it.
    await h.send(TYPES.connected, device, {}, { time: at(2) });
    await h.send(TYPES.telemetry, device, { metrics: { v: 1 } }, { time: at(2) });
    expect((await state(device)).presence).toMatchObject({
      status: 'offline',
      since: at(3),
      disconnectedAt: at(3),
      lastSeen: at(2),
    });
    // A message after the disconnect proves it is back.
    await h.send(TYPES.telemetry, device, { metrics: { v: 2 } }, { time: at(4) });
    expect((await state(device)).presence).toMatchObject({ status: 'online', since: at(4), lastSeen: at(4) });
  });

  it('refuses presence of an unregistered device with 422 and answers 404 to apps', async () => {
    const ghost = uniqueName('ghost');
    expect((await h.send(TYPES.connected, ghost, {})).status).toBe(422);
    expect((await h.get(`/devices/${ghost}/state`)).status).toBe(404);
    expect((await fetch(`${h.base}/devices/${ghost}/state`)).status).toBe(401);
  });
});
