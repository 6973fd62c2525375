import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../support/ports.js';
import { MQTT_URL } from '../../support/services.js';
import { type JobsHarness, jobBody, startJobsHarness } from './harness.js';

// JOBS_MQTT_URL: jobs publishes notifications and answers straight to a real Mosquitto (the test broker), not as
// io.kiot.mqtt.publish events through the Broker; a broker that is away fails the request with 503 (retried).
let h: JobsHarness;
let device: MqttClient;
const received: { topic: string; payload: Record<string, unknown> }[] = [];

beforeAll(async () => {
  h = await startJobsHarness({ env: { JOBS_MQTT_URL: MQTT_URL } });
  device = await mqtt.connectAsync(MQTT_URL, { clientId: h.id('watcher'), protocolVersion: 5 });
  device.on('message', (topic, payload) => received.push({ topic, payload: JSON.parse(payload.toString('utf8')) }));
});
afterAll(async () => {
  await device?.endAsync();
  await h?.close();
});

async function message(topic: string, after = 0): Promise<Record<string, unknown>> {
  for (let i = 0; i < 200; i += 1) {
    const found = received.filter((m) => m.topic === topic);
    if (found.length > after) return found[after]!.payload;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no message on ${topic}; got ${received.map((m) => m.topic).join(', ')}`);
}

describe('jobs publishing straight to the broker', () => {
  it('notifies a released execution and answers its update over MQTT, with no publish events to the Broker', async () => {
    const id = h.id('direct');
    await h.addDevices([{ id }]);
    await device.subscribeAsync(`devices/${id}/jobs/#`, { qos: 1 });
    const jobId = h.id('direct-job');
    expect((await h.request('POST', '/jobs', jobBody(jobId, { deviceIds: [id] }))).status).toBe(201);
    await h.pass();
    const next = (await message(`devices/${id}/jobs/notify-next`)) as {
      execution: { jobId: string; status: string; versionNumber: number };
    };
    expect(next.execution).toMatchObject({ jobId, status: 'QUEUED' });
    expect(await message(`devices/${id}/jobs/notify`)).toMatchObject({ jobs: { QUEUED: [{ jobId }] } });

    const status = await h.deviceRequest(
      id,
      'update',
      { status: 'SUCCEEDED', expectedVersion: next.execution.versionNumber, clientToken: 'c-1' },
      jobId,
    );
    expect(status).toBe(204);
    expect(await message(`devices/${id}/jobs/${jobId}/update/accepted`)).toMatchObject({ clientToken: 'c-1' });
    expect(h.published(id)).toEqual([]);
  });

  it('fails a device request with 503 while the broker is away, so the Broker retries it', async () => {
    const away = await startJobsHarness({
      env: { JOBS_MQTT_URL: `mqtt://127.0.0.1:${await freePort()}`, JOBS_MQTT_TIMEOUT_MS: '500' },
    });
    try {
      const id = away.id('away');
      await away.addDevices([{ id }]);
      expect(await away.deviceRequest(id, 'get', {})).toBe(503);
    } finally {
      await away.close();
    }
  });
});
