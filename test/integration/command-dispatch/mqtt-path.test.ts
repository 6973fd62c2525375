import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MQTT_URL, uniqueName } from '../../support/services.js';
import { eventually } from './harness.js';
import { clearRetained, connectDevice, type Stack, startStack, waitPresence } from './stack.js';

// End to end over the real path: HTTP → command-dispatch → router (knative/ Triggers) → bridge →
// Mosquitto → a real MQTT device → ack → bridge → router → command-dispatch.
describe('commands over MQTT through the router and the bridge', () => {
  let stack: Stack;
  const devices: string[] = [];

  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await clearRetained(devices);
    await stack.close();
  });

  const newDevice = async () => {
    const id = uniqueName('mdev');
    devices.push(id);
    await stack.h.registerDevice(id);
    return id;
  };

  it('answers a synchronous call with the result the device published', async () => {
    const id = await newDevice();
    const device = await connectDevice(id, (command) => ({ status: 'succeeded', result: { echo: command.params } }));
    await waitPresence(stack.h, id, true);

    const answered = await stack.h.request('POST', `/devices/${id}/commands`, {
      name: 'echo',
      params: { x: 1 },
      wait: 20,
    });
    expect(answered.status).toBe(200);
    expect(answered.body).toMatchObject({ status: 'SUCCEEDED', result: { echo: { x: 1 } } });
    expect(device.received).toEqual([
      { commandId: answered.body.id, name: 'echo', params: { x: 1 }, expiresAt: answered.body.expiresAt },
    ]);
    await eventually(
      async () =>
        (await stack.h.request('GET', `/commands/${answered.body.id}`)).body.history.length === 4 || undefined,
    );
    const history = (await stack.h.request('GET', `/commands/${answered.body.id}`)).body.history.map(
      (e: { status: string }) => e.status,
    );
    expect(history).toEqual(['QUEUED', 'SENT', 'DELIVERED', 'SUCCEEDED']);
    await device.leave();
  });

  it('gives 504 for a device that never answers, and the command is still tracked', async () => {
    const id = await newDevice();
    const device = await connectDevice(id, () => 'silent');
    await waitPresence(stack.h, id, true);
    const late = await stack.h.request('POST', `/devices/${id}/commands`, {
      name: 'hang',
      wait: 1,
      timeoutSeconds: 30,
    });
    expect(late.status).toBe(504);
    await eventually(async () => device.received.length === 1 || undefined);
    expect((await stack.h.request('GET', `/commands/${late.body.command.id}`)).body.status).toBe('SENT');
    await device.leave();
  });

  it('queues while the device is offline and delivers in order when it connects; expired ones never', async () => {
    const id = await newDevice();
    const names = ['one', 'two', 'three', 'four'];
    const ids: string[] = [];
    for (const [i, name] of names.entries()) {
      const created = await stack.h.request('POST', `/devices/${id}/commands`, {
        name,
        ...(i === 1 ? { ttlSeconds: 1 } : {}),
      });
      expect(created.body.status).toBe('QUEUED');
      ids.push(created.body.id);
    }
    const expiresAt = Date.parse((await stack.h.request('GET', `/commands/${ids[1]}`)).body.expiresAt);
    await eventually(async () => Date.now() > expiresAt);

    const device = await connectDevice(id, (command) => ({ status: 'succeeded', result: command.name }));
    await eventually(async () => {
      const statuses = await Promise.all(
        ids.map(async (c) => (await stack.h.request('GET', `/commands/${c}`)).body.status),
      );
      return statuses.join() === 'SUCCEEDED,EXPIRED,SUCCEEDED,SUCCEEDED' || undefined;
    });
    expect(device.received.map((c) => c.name)).toEqual(['one', 'three', 'four']);
    await device.leave();
    await waitPresence(stack.h, id, false);
    // Offline again: the next one waits.
    expect((await stack.h.request('POST', `/devices/${id}/commands`, { name: 'five' })).body.status).toBe('QUEUED');
  });

  it('publishes the desired-state delta retained and clears it when the device reports the values', async () => {
    const id = await newDevice();
    const device = await connectDevice(id, () => 'silent');
    const desired: { payload: string; retain: boolean }[] = [];
    device.client.on('message', (topic, payload, packet) => {
      if (topic === `devices/${id}/state/desired`)
        desired.push({ payload: payload.toString('utf8'), retain: packet.retain });
    });
    await device.client.subscribeAsync(`devices/${id}/state/desired`, { qos: 1 });

    const patched = await stack.h.request('PATCH', `/devices/${id}/state/desired`, { led: 'on', interval: 30 });
    expect(patched.status).toBe(200);
    await eventually(async () => desired.length === 1 || undefined);
    expect(JSON.parse(desired[0]!.payload)).toEqual({ led: 'on', interval: 30 });
    // Retained: a device that subscribes later gets it at once.
    expect(await retainedDelta(id)).toEqual({ led: 'on', interval: 30 });

    await device.client.publishAsync(`devices/${id}/state/reported`, JSON.stringify({ led: 'on', interval: 30 }), {
      qos: 1,
    });
    await eventually(async () => desired.length === 2 || undefined);
    expect(desired[1]!.payload).toBe('');
    expect(await retainedDelta(id)).toBeUndefined();
    await device.leave();
  });
});

/** The retained delta a newly subscribing device would get (a marker published after SUBACK bounds the wait). */
async function retainedDelta(id: string): Promise<unknown> {
  const client = await mqtt.connectAsync(MQTT_URL, { clientId: uniqueName('late'), protocolVersion: 5 });
  const marker = `kiot-test/${uniqueName('marker')}`;
  let retained: unknown;
  const done = new Promise<void>((resolve) => {
    client.on('message', (topic, payload) => {
      if (topic === marker) resolve();
      else if (payload.length > 0) retained = JSON.parse(payload.toString('utf8'));
    });
  });
  await client.subscribeAsync([`devices/${id}/state/desired`, marker], { qos: 1 });
  await client.publishAsync(marker, 'x', { qos: 1 });
  await done;
  await client.endAsync();
  return retained;
}
