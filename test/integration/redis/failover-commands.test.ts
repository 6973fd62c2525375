import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PrivateTopology, startPrivateTopology } from '../../support/redis-topology.js';
import { type SinkServer, startSinkServer } from '../../support/sink-server.js';
import { type Harness, startHarness } from '../command-dispatch/harness.js';

// A synchronous command (an app waiting for the device's answer) while the master holding the device's
// slot dies: the caller gets the device's answer, requests meanwhile are refused with 503 (never 500), and
// the function serves the next synchronous command without a restart.
describe.each(['cluster', 'sentinel'] as const)('command-dispatch across a Redis %s failover', (kind) => {
  let topology: PrivateTopology;
  let sink: SinkServer;
  let h: Harness;

  beforeAll(async () => {
    topology = await startPrivateTopology(kind);
    sink = await startSinkServer();
    h = await startHarness({ sink: sink.url, redisUrl: topology.url });
  }, 120_000);

  afterAll(async () => {
    await h?.close();
    await sink?.close();
    await topology?.stop();
  });

  /** The id of the command the function published to `deviceId` (as the bridge would, over MQTT). */
  async function published(deviceId: string, name: string): Promise<string> {
    const find = () =>
      sink.received.find(
        (r) =>
          r.event?.type === 'io.kiot.mqtt.publish' &&
          r.event.subject === deviceId &&
          (r.event.data as { payload: { name?: string } }).payload.name === name,
      )?.event;
    await sink.waitFor(() => find() !== undefined);
    return (find()!.data as { topic: string }).topic.split('/').pop()!;
  }
  const ack = (deviceId: string, commandId: string, statuses: number[]) =>
    h.deliver(
      {
        type: 'io.kiot.command.acknowledged',
        subject: deviceId,
        id: `${commandId}-ack`,
        data: { status: 'succeeded', result: { ok: true }, commandId },
      },
      statuses,
    );

  it("answers a call waiting through the failover with the device's answer, and 503 meanwhile", async () => {
    const device = await h.onlineDevice();
    const call = h.request('POST', `/devices/${device}/commands`, { name: 'reboot', wait: 25 });
    const commandId = await published(device, 'reboot');
    const master = await topology.masterOf(`{${device}}`);
    topology.kill(master);

    // The device answers while the slot has no master; the Broker delivers the ack until it is accepted.
    const statuses: number[] = [];
    const acked = ack(device, commandId, statuses);
    // Apps keep sending commands to the device: refused with 503 until a replica has taken over.
    const created: number[] = [];
    for (let i = 0; ; i += 1) {
      const { status } = await h.request('POST', `/devices/${device}/commands`, { name: `probe-${i}` });
      created.push(status);
      if (status === 202) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(await acked).toBe(204);
    const answer = await call;

    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ id: commandId, status: 'SUCCEEDED', result: { ok: true } });
    expect(await topology.failedOver(`{${device}}`, master)).not.toBe(master);
    // The outage was met, and answered as one: retried, never a 500.
    expect([...statuses, ...created]).toContain(503);
    expect([...statuses, ...created].filter((status) => status !== 503 && status >= 300)).toEqual([]);
  }, 90_000);

  it('serves the next synchronous command without a restart', async () => {
    const device = await h.onlineDevice();
    const call = h.request('POST', `/devices/${device}/commands`, { name: 'ping', wait: 10 });
    const commandId = await published(device, 'ping');
    const statuses: number[] = [];
    expect(await ack(device, commandId, statuses)).toBe(204);
    expect(statuses).toEqual([204]);
    expect(await call).toMatchObject({ status: 200, body: { id: commandId, status: 'SUCCEEDED' } });
  }, 30_000);
});
