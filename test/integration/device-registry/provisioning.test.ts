import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCredential, type SealedCredential } from '../../../functions/device-registry/reply-crypto.js';
import { CloudEvent, toBinaryMessage } from '../../../shared/cloudevents.js';
import { uniqueName } from '../../support/services.js';
import { connectDevice, type Harness, startHarness } from './harness.js';

type Reply = {
  status: string;
  requestId: string;
  deviceId?: string;
  credential?: SealedCredential;
  error?: { code: string; message: string };
};
const newReplyKey = () => randomBytes(32).toString('base64url');

// Self-provisioning driven through the real function with real CloudEvents; replies reach K_SINK as
// io.kiot.mqtt.publish for the bridge, and the device then connects to the real broker with them.
describe('device-registry self-provisioning', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => h?.close());

  const token = async (body: Record<string, unknown> = {}) => {
    const response = await h.api('/provisioning-tokens', { body });
    expect(response.status).toBe(201);
    return ((await response.json()) as { token: string }).token;
  };
  /**
   * Sends io.kiot.provisioning.requested as the bridge does (with a fresh reply key unless `data` names one, or
   * `replyKey: undefined` to send none), and returns the reply published for it.
   */
  const request = async (requestId: string, data: Record<string, unknown>, eventId = uniqueName('ev')) => {
    const before = h.sink.received.length;
    const body = JSON.parse(JSON.stringify({ replyKey: newReplyKey(), ...data, requestId }));
    const event = new CloudEvent({
      id: eventId,
      source: '/kiot/mqtt-bridge',
      type: 'io.kiot.provisioning.requested',
      subject: requestId,
      data: body,
    });
    const message = toBinaryMessage(event);
    const response = await fetch(h.base, { method: 'POST', headers: message.headers, body: message.body });
    expect(response.status).toBe(204);
    await h.sink.waitFor((received) =>
      received.slice(before).some((r) => r.event?.type === 'io.kiot.mqtt.publish' && r.event.subject === requestId),
    );
    const publish = h.sink.received
      .slice(before)
      .find((r) => r.event?.type === 'io.kiot.mqtt.publish' && r.event.subject === requestId)!.event!;
    const data2 = publish.data as { topic: string; payload: Reply; qos: number; retain: boolean };
    expect(data2).toMatchObject({ topic: `provisioning/${requestId}/response`, qos: 1, retain: false });
    return data2.payload;
  };

  it('registers a device from a claim token, with the token type and tags; the device connects', async () => {
    const claimToken = await token({ type: 'thermo', tags: ['fleet-a'], maxUses: 5 });
    const requestId = uniqueName('req');
    const replyKey = newReplyKey();
    const reply = await request(requestId, { claimToken, name: 'kitchen', replyKey });
    expect(reply).toMatchObject({
      status: 'accepted',
      requestId,
      deviceId: expect.any(String),
      credential: { alg: 'A256GCM' },
    });
    expect(reply).not.toHaveProperty('secret');
    // Only the holder of the reply key recovers the secret; another key, or the reply moved to another request id, fails.
    const credential = openCredential(Buffer.from(replyKey, 'base64url'), requestId, reply.credential!);
    expect(credential?.secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(JSON.stringify(reply)).not.toContain(credential!.secret);
    expect(openCredential(randomBytes(32), requestId, reply.credential!)).toBeUndefined();
    expect(openCredential(Buffer.from(replyKey, 'base64url'), `${requestId}x`, reply.credential!)).toBeUndefined();
    const device = (await (await h.api(`/devices/${reply.deviceId}`)).json()) as Record<string, unknown>;
    expect(device).toMatchObject({ type: 'thermo', tags: ['fleet-a'], name: 'kitchen' });
    const outcome = await connectDevice(h.broker.url, reply.deviceId!, credential!.secret);
    expect(outcome.ok).toBe(true);
    if (outcome.ok) await outcome.client.endAsync();
    expect(
      h.sink.received.some((r) => r.event?.type === 'io.kiot.device.registered' && r.event.subject === reply.deviceId),
    ).toBe(true);
  });

  it('refuses a request without a reply key (or with a bad one) with a reason, and registers nothing', async () => {
    const claimToken = await token({ maxUses: 1 });
    const missing = await request(uniqueName('nokey'), { claimToken, replyKey: undefined });
    expect(missing).toMatchObject({
      status: 'refused',
      error: { code: 'invalid_request', message: expect.stringContaining('replyKey') },
    });
    const short = await request(uniqueName('short'), { claimToken, replyKey: randomBytes(16).toString('base64url') });
    expect(short).toMatchObject({
      status: 'refused',
      error: { code: 'invalid_request', message: expect.stringContaining('replyKey') },
    });
    // The single use is still there.
    expect((await request(uniqueName('ok'), { claimToken })).status).toBe('accepted');
  });

  it('gives one device for the same request id twice, with the same answer; another reply key gets no secret', async () => {
    const claimToken = await token({ maxUses: 5 });
    const requestId = uniqueName('again');
    const replyKey = newReplyKey();
    const first = await request(requestId, { claimToken, replyKey });
    const second = await request(requestId, { claimToken, replyKey });
    expect(second).toEqual(first);
    const secret = openCredential(Buffer.from(replyKey, 'base64url'), requestId, second.credential!)?.secret;
    const connected = await connectDevice(h.broker.url, first.deviceId!, secret!);
    expect(connected.ok).toBe(true);
    if (connected.ok) await connected.client.endAsync();
    // Every claim holder sees request ids on the response topics: replaying one under its own key is refused.
    const hijack = await request(requestId, { claimToken });
    expect(hijack).toMatchObject({ status: 'refused', error: { code: 'request_id_used' } });
    expect(hijack).not.toHaveProperty('credential');
    const listed = (await (await h.api(`/devices?limit=500`)).json()) as { items: { id: string }[] };
    expect(listed.items.filter((d) => d.id === first.deviceId)).toHaveLength(1);
    // One use taken, not two: 4 more requests succeed, the 5th is refused.
    for (let i = 0; i < 4; i += 1) expect((await request(uniqueName('fill'), { claimToken })).status).toBe('accepted');
    expect(await request(uniqueName('over'), { claimToken })).toMatchObject({
      status: 'refused',
      error: { code: 'used_up' },
    });
  });

  it('refuses an expired, a used-up, a forged token and a malformed request with a reason', async () => {
    const single = await token({ maxUses: 1 });
    expect((await request(uniqueName('r'), { claimToken: single })).status).toBe('accepted');
    expect(await request(uniqueName('r'), { claimToken: single })).toMatchObject({
      status: 'refused',
      error: { code: 'used_up' },
    });
    expect(await request(uniqueName('r'), { claimToken: `${single.slice(0, -2)}zz` })).toMatchObject({
      status: 'refused',
      error: { code: 'invalid' },
    });
    expect(await request(uniqueName('r'), { claimToken: 'kpt_nope' })).toMatchObject({
      status: 'refused',
      error: { code: 'invalid' },
    });
    expect(await request(uniqueName('r'), { id: 'no-token' })).toMatchObject({
      status: 'refused',
      error: { code: 'invalid_request' },
    });
    // Refusals carry no credential at all.
    expect(await request(uniqueName('r'), { claimToken: single })).not.toHaveProperty('credential');

    const expiring = await token({ ttlSeconds: 60 });
    const realNow = h.registry.deps.now;
    h.registry.deps.now = () => new Date(Date.now() + 61_000);
    try {
      expect(await request(uniqueName('r'), { claimToken: expiring })).toMatchObject({
        status: 'refused',
        error: { code: 'expired' },
      });
    } finally {
      h.registry.deps.now = realNow;
    }
  });

  it('refuses a requested id that is taken and gives the use back', async () => {
    const taken = uniqueName('taken');
    await h.api('/devices', { body: { id: taken } });
    const claimToken = await token({ maxUses: 1 });
    expect(await request(uniqueName('r'), { claimToken, id: taken })).toMatchObject({
      status: 'refused',
      error: { code: 'id_taken' },
    });
    expect((await request(uniqueName('r'), { claimToken, id: uniqueName('free') })).status).toBe('accepted');
  });

  it('lets only one of many concurrent claims take a single-use token', async () => {
    const claimToken = await token({ maxUses: 1 });
    const replies = await Promise.all(Array.from({ length: 6 }, () => request(uniqueName('race'), { claimToken })));
    expect(replies.filter((r) => r.status === 'accepted')).toHaveLength(1);
    expect(replies.filter((r) => r.error?.code === 'used_up')).toHaveLength(5);
  });
});
