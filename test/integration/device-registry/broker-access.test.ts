import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueName } from '../../support/services.js';
import { connectDevice, disconnected, type Harness, startHarness } from './harness.js';

// The broker enforces the registry: real Mosquitto 2.0.11 with dynamic security (a private instance).
describe('device-registry broker access (Mosquitto dynamic security)', () => {
  let h: Harness;
  let observer: MqttClient;
  const seen: string[] = [];

  beforeAll(async () => {
    h = await startHarness();
    const admin = await connectDevice(
      h.broker.url,
      h.broker.admin.username,
      h.broker.admin.password,
      uniqueName('observer'),
    );
    if (!admin.ok) throw new Error(admin.reason);
    observer = admin.client;
    observer.on('message', (topic, payload) => seen.push(`${topic} ${payload.toString()}`));
    await observer.subscribeAsync('devices/#', { qos: 1 });
  });
  afterAll(async () => {
    await observer?.endAsync(true);
    await h?.close();
  });

  const register = async (body: Record<string, unknown> = {}) => {
    const response = await h.api('/devices', { body: { id: uniqueName('dev'), ...body } });
    expect(response.status).toBe(201);
    return (await response.json()) as { device: { id: string; version: number }; secret: string };
  };
  const waitSeen = async (line: string) => {
    for (let i = 0; i < 800 && !seen.includes(line); i += 1) await new Promise((r) => setTimeout(r, 25));
    return seen.includes(line);
  };

  it('a registered device connects with its secret and publishes under its own topics', async () => {
    const { device, secret } = await register();
    const outcome = await connectDevice(h.broker.url, device.id, secret);
    expect(outcome.ok).toBe(true);
    if (!outcome.ok) return;
    await outcome.client.publishAsync(`devices/${device.id}/telemetry`, '{"metrics":{"t":1}}', { qos: 1 });
    expect(await waitSeen(`devices/${device.id}/telemetry {"metrics":{"t":1}}`)).toBe(true);
    await outcome.client.endAsync();
  });

  it('refuses a wrong secret, and the right secret under another client id', async () => {
    const { device, secret } = await register();
    expect((await connectDevice(h.broker.url, device.id, `${secret}x`)).ok).toBe(false);
    expect((await connectDevice(h.broker.url, device.id, secret, `${device.id}-other`)).ok).toBe(false);
  });

  it("can neither publish nor subscribe under another device's topics", async () => {
    const a = await register();
    const b = await register();
    const outcome = await connectDevice(h.broker.url, a.device.id, a.secret);
    if (!outcome.ok) throw new Error(outcome.reason);
    const client = outcome.client;
    const suback = (filter: string) =>
      client.subscribeAsync(filter, { qos: 1 }).then(
        (granted) => granted[0]!.qos,
        (error: { packet?: { granted?: number[] } }) => error.packet?.granted?.[0] ?? -1,
      );
    // SUBACK reason codes (MQTT 5 §3.9.3): 0x87 "not authorized" for the foreign filters, QoS 1 for its own.
    for (const filter of [`devices/${b.device.id}/#`, 'devices/+/commands/#', '#'])
      expect(await suback(filter)).toBe(135);
    expect(await suback(`devices/${a.device.id}/commands/#`)).toBe(1);
    // MQTT 5 PUBACK reason 0x87 (§3.4.2.1): the broker says no to the sender as well.
    await expect(client.publishAsync(`devices/${b.device.id}/telemetry`, 'forged', { qos: 1 })).rejects.toMatchObject({
      code: 135,
    });
    await client.publishAsync(`devices/${a.device.id}/telemetry`, 'marker', { qos: 1 });
    expect(await waitSeen(`devices/${a.device.id}/telemetry marker`)).toBe(true);
    // The marker went after the forged message on the same connection; the broker delivers in order.
    expect(seen).not.toContain(`devices/${b.device.id}/telemetry forged`);
    await client.endAsync();
  });

  it("covers the jobs topics: its own job requests and notifications, never another device's", async () => {
    const a = await register();
    const b = await register();
    const outcome = await connectDevice(h.broker.url, a.device.id, a.secret);
    if (!outcome.ok) throw new Error(outcome.reason);
    const client = outcome.client;
    const suback = (filter: string) =>
      client.subscribeAsync(filter, { qos: 1 }).then(
        (granted) => granted[0]!.qos,
        (error: { packet?: { granted?: number[] } }) => error.packet?.granted?.[0] ?? -1,
      );
    for (const filter of [
      `devices/${b.device.id}/jobs/notify-next`,
      `devices/${b.device.id}/jobs/+/update/accepted`,
      'devices/+/jobs/#',
    ])
      expect(await suback(filter)).toBe(135);
    expect(await suback(`devices/${a.device.id}/jobs/notify-next`)).toBe(1);
    expect(await suback(`devices/${a.device.id}/jobs/+/update/+`)).toBe(1);
    await expect(
      client.publishAsync(`devices/${b.device.id}/jobs/fw-1/update`, '{"status":"SUCCEEDED"}', { qos: 1 }),
    ).rejects.toMatchObject({ code: 135 });
    await client.publishAsync(`devices/${a.device.id}/jobs/start-next`, 'own', { qos: 1 });
    expect(await waitSeen(`devices/${a.device.id}/jobs/start-next own`)).toBe(true);
    expect(seen).not.toContain(`devices/${b.device.id}/jobs/fw-1/update {"status":"SUCCEEDED"}`);
    await client.endAsync();
  });

  it('after rotation the old secret fails and the new one works', async () => {
    const { device, secret } = await register();
    const rotated = await h.api(`/devices/${device.id}/credentials`, { method: 'POST' });
    expect(rotated.status).toBe(201);
    const { secret: fresh } = (await rotated.json()) as { secret: string };
    expect(fresh).not.toBe(secret);
    expect((await connectDevice(h.broker.url, device.id, secret)).ok).toBe(false);
    const outcome = await connectDevice(h.broker.url, device.id, fresh);
    expect(outcome.ok).toBe(true);
    if (outcome.ok) await outcome.client.endAsync();
  });

  it('disabling disconnects the device and keeps it out until enabled again', async () => {
    const { device, secret } = await register();
    const outcome = await connectDevice(h.broker.url, device.id, secret);
    if (!outcome.ok) throw new Error(outcome.reason);
    outcome.client.on('error', () => undefined);
    const gone = disconnected(outcome.client);
    const patched = await h.api(`/devices/${device.id}`, {
      method: 'PATCH',
      body: { status: 'disabled' },
      headers: { 'if-match': `"${device.version}"` },
    });
    expect(patched.status).toBe(200);
    await gone;
    expect((await connectDevice(h.broker.url, device.id, secret)).ok).toBe(false);
    const enabled = await h.api(`/devices/${device.id}`, {
      method: 'PATCH',
      body: { status: 'active' },
      headers: { 'if-match': patched.headers.get('etag')! },
    });
    expect(enabled.status).toBe(200);
    const again = await connectDevice(h.broker.url, device.id, secret);
    expect(again.ok).toBe(true);
    if (again.ok) await again.client.endAsync();
  });

  it('deleting disconnects the device at once and it cannot reconnect', async () => {
    const { device, secret } = await register();
    const outcome = await connectDevice(h.broker.url, device.id, secret);
    if (!outcome.ok) throw new Error(outcome.reason);
    outcome.client.on('error', () => undefined);
    const gone = disconnected(outcome.client);
    expect((await h.api(`/devices/${device.id}`, { method: 'DELETE' })).status).toBe(204);
    await gone;
    expect((await connectDevice(h.broker.url, device.id, secret)).ok).toBe(false);
    expect((await h.api(`/devices/${device.id}`)).status).toBe(404);
  });

  it('answers 503 while the broker is down, leaves no device behind, and registers once it is back', async () => {
    const id = uniqueName('down');
    await h.broker.stop();
    try {
      const refused = await h.api('/devices', { body: { id } });
      expect(refused.status).toBe(503);
      expect(await refused.json()).toMatchObject({ error: { code: 'dependency_unavailable' } });
      expect((await h.api(`/devices/${id}`)).status).toBe(404);
    } finally {
      await h.broker.start();
    }
    const { device, secret } = await register({ id });
    const outcome = await connectDevice(h.broker.url, device.id, secret);
    expect(outcome.ok).toBe(true);
    if (outcome.ok) await outcome.client.endAsync();
  });
});
