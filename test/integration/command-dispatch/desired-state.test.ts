import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMongo } from '../../../shared/mongo.js';
import { createRedis } from '../../../shared/redis.js';
import { applyReport } from '../../../shared/shadow.js';
import { createShadowStore, updateShadow } from '../../../shared/shadow-store.js';
import { MONGODB_URL, REDIS_URL, uniqueName } from '../../support/services.js';
import { type SinkServer, startSinkServer } from '../../support/sink-server.js';
import { type Harness, startHarness } from './harness.js';

// Desired state over real HTTP, MongoDB and Redis; the retained publishes are asserted at the sink.
describe('desired state (PATCH, If-Match, retained delta)', () => {
  let sink: SinkServer;
  let h: Harness;
  const redis = createRedis(REDIS_URL);
  let mongo: ReturnType<typeof createMongo>;

  beforeAll(async () => {
    sink = await startSinkServer();
    h = await startHarness({ sink: sink.url });
    mongo = createMongo(MONGODB_URL, h.dbName);
  });
  afterAll(async () => {
    await h.close();
    await sink.close();
    await redis.close();
    await mongo.close();
  });

  const deltas = (deviceId: string) =>
    sink.received
      .filter(
        (r) =>
          r.event?.type === 'io.kiot.mqtt.publish' &&
          (r.event.data as { topic: string }).topic === `devices/${deviceId}/state/desired`,
      )
      .map((r) => r.event!.data as { payload: unknown; retain: boolean; qos: number });
  /** What telemetry-ingest does with the same report: merge it into the shared shadow. */
  const ingestMerges = (deviceId: string, patch: Record<string, unknown>) =>
    updateShadow(createShadowStore(redis, mongo, `${h.prefix}ti`), deviceId, (s) =>
      applyReport(s, patch, Date.now(), { maxBytes: 8192, maxDepth: 6 }),
    );
  const report = (deviceId: string, patch: Record<string, unknown>) =>
    h.sendEvent({ type: 'io.kiot.state.reported', subject: deviceId, data: patch });

  it('publishes the delta retained, shrinks it as the device reports, and clears it', async () => {
    const id = uniqueName('sdev');
    await h.registerDevice(id);
    const first = await h.request('PATCH', `/devices/${id}/state/desired`, {
      led: 'on',
      fw: { version: 2, channel: 'stable' },
    });
    expect(first.status).toBe(200);
    expect(first.headers.get('etag')).toBe('"1"');
    expect(first.body).toMatchObject({
      desired: { led: 'on', fw: { version: 2, channel: 'stable' } },
      delta: { led: 'on', fw: { version: 2, channel: 'stable' } },
      version: 1,
    });
    expect(deltas(id)).toEqual([
      {
        topic: `devices/${id}/state/desired`,
        payload: { led: 'on', fw: { version: 2, channel: 'stable' } },
        qos: 1,
        retain: true,
      },
    ]);

    // The device reports part of it: before or after telemetry-ingest merged it, the delta is the same.
    expect(await report(id, { led: 'on', fw: { channel: 'stable' } })).toBe(204);
    await ingestMerges(id, { led: 'on', fw: { channel: 'stable' } });
    expect(deltas(id).at(-1)!.payload).toEqual({ fw: { version: 2 } });

    await ingestMerges(id, { fw: { version: 2 } });
    expect(await report(id, { fw: { version: 2 } })).toBe(204);
    // Nothing left: a zero-byte retained publish removes the retained message.
    expect(deltas(id).at(-1)).toMatchObject({ payload: '', retain: true });
    const count = deltas(id).length;
    await ingestMerges(id, { uptime: 5 });
    expect(await report(id, { uptime: 5 })).toBe(204);
    expect(deltas(id)).toHaveLength(count);

    const state = await h.request('GET', `/devices/${id}/state/desired`);
    expect(state.body).toMatchObject({
      delta: {},
      reported: { led: 'on', fw: { version: 2, channel: 'stable' }, uptime: 5 },
    });
    expect(state.headers.get('etag')).toBe(`"${state.body.version}"`);
  });

  it('applies If-Match on the shadow version (412 when stale) and merge-patch removals', async () => {
    const id = uniqueName('sdev');
    await h.registerDevice(id);
    const created = await h.request('PATCH', `/devices/${id}/state/desired`, { a: 1, b: { c: 2 } });
    const etag = created.headers.get('etag')!;
    const stale = await fetch(`${h.instances[0]!.base}/devices/${id}/state/desired`, {
      method: 'PATCH',
      headers: {
        authorization: `Bearer ${h.apiKey}`,
        'content-type': 'application/merge-patch+json',
        'if-match': '"0"',
      },
      body: JSON.stringify({ a: 2 }),
    });
    expect(stale.status).toBe(412);
    const fresh = await fetch(`${h.instances[0]!.base}/devices/${id}/state/desired`, {
      method: 'PATCH',
      headers: {
        authorization: `Bearer ${h.apiKey}`,
        'content-type': 'application/merge-patch+json',
        'if-match': etag,
      },
      body: JSON.stringify({ a: null, b: { d: 3 } }),
    });
    expect(fresh.status).toBe(200);
    expect(await fresh.json()).toMatchObject({ desired: { b: { c: 2, d: 3 } }, delta: { b: { c: 2, d: 3 } } });
    expect(deltas(id).at(-1)!.payload).toEqual({ b: { c: 2, d: 3 } });
  });

  it('refuses bad patches and unknown devices', async () => {
    const id = uniqueName('sdev');
    await h.registerDevice(id);
    expect((await h.request('PATCH', `/devices/${id}/state/desired`, [1, 2])).status).toBe(400);
    expect((await h.request('PATCH', `/devices/${id}/state/desired`, { $set: { a: 1 } })).status).toBe(400);
    expect((await h.request('PATCH', `/devices/${id}/state/desired`, { a: 'x'.repeat(9000) })).status).toBe(400);
    expect((await h.request('PATCH', `/devices/${uniqueName('none')}/state/desired`, { a: 1 })).status).toBe(404);
    // What would not come back unchanged through JSON, and prototype keys: 400, and the shadow stays as it was.
    const before = (await h.request('GET', `/devices/${id}/state/desired`)).body;
    for (const [text, code] of [
      ['{"a":1e999}', 'non_finite_number'],
      ['{"__proto__":{"admin":true}}', 'prototype_key'],
      ['{"a":{"constructor":1}}', 'prototype_key'],
      ['{"prototype":{}}', 'prototype_key'],
      ['{"a":"\\ud800"}', 'invalid_unicode'],
    ]) {
      const refused = await fetch(`${h.instances[0]!.base}/devices/${id}/state/desired`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${h.apiKey}`, 'content-type': 'application/json' },
        body: text,
      });
      expect(refused.status).toBe(400);
      expect(await refused.json()).toMatchObject({ error: { code: 'invalid_state', details: [{ code }] } });
    }
    expect((await h.request('GET', `/devices/${id}/state/desired`)).body).toEqual(before);
    const badEtag = await fetch(`${h.instances[0]!.base}/devices/${id}/state/desired`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${h.apiKey}`, 'content-type': 'application/json', 'if-match': 'nope' },
      body: '{"a":1}',
    });
    expect(badEtag.status).toBe(400);
  });
});
