import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueName } from '../../support/services.js';
import { eventually } from './harness.js';
import { clearRetained, connectDevice, startStack, waitPresence, type Stack } from './stack.js';

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

    const answered = await stack.h.request('POST', `/devices/${id}/commands`, { name: 'echo', params: { x: 1 }, wait: 20 });
    expect(answered.status).toBe(200);
    expect(answered.body).toMatchObject({ status: 'SUCCEEDED', result: { echo: { x: 1 } } });
    expect(device.received).toEqual([{ commandId: answered.body.id, name: 'echo', params: { x: 1 }, expiresAt: answered.body.expiresAt }]);
    await eventually(async () => (await stack.h.request('GET', `/commands/${answered.body.id}`)).body.history.length === 4 || undefined);
    const history = (await stack.h.request('GET', `/commands/${answered.body.id}`)).body.history.map((e: { status: string }) => e.status);
    expect(history).toEqual(['QUEUED', 'SENT', 'DELIVERED', 'SUCCEEDED']);
    await device.leave();
  });

  it('gives 504 for a device that never answers, and the command is still tracked', async () => {
    const id = await newDevice();
    const device = await connectDevice(id, () => 'silent');
    await waitPresence(stack.h, id, true);
    const late = await stack.h.request('POST', `/devices/${id}/commands`, { name: 'hang', wait: 1, timeoutSeconds: 30 });
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
      const created = await stack.h.request('POST', `/devices/${id}/commands`, { name, ...(i === 1 ? { ttlSeconds: 1 } : {}) });
      expect(created.body.status).toBe('QUEUED');
      ids.push(created.body.id);
    }
    const expiresAt = Date.parse((await stack.h.request('GET', `/commands/${ids[1]}`)).body.expiresAt);
    await eventually(async () => Date.now() > expiresAt);

    const device = await connectDevice(id, (command) => ({ status: 'succeeded', result: command.name }));
    await eventually(async () => {
      const statuses = await Promise.all(ids.map(async (c) => (await stack.h.request('GET', `/commands/${c}`)).body.status));
      return statuses.join() === 'SUCCEEDED,EXPIRED,SUCCEEDED,SUCCEEDED' || undefined;
    });
    expect(device.received.map((c) => c.name)).toEqual(['one', 'three', 'four']);
    await device.leave();
    await waitPresence(stack.h, id, false);
    // Offline again: the next one waits.
    expect((await stack.h.request('POST', `/devices/${id}/commands`, { name: 'five' })).body.status).toBe('QUEUED');
  });
});
