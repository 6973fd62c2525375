import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueName } from '../../support/services.js';
import { type SinkServer, startSinkServer } from '../../support/sink-server.js';
import { eventually, type Harness, startHarness } from './harness.js';

// Expiry without any traffic: the local sweep timer (COMMAND_SWEEP_INTERVAL_MS) moves overdue commands,
// as the PingSource does in the cluster.
describe('command-dispatch sweep timer', () => {
  let sink: SinkServer;
  let h: Harness;

  beforeAll(async () => {
    sink = await startSinkServer();
    h = await startHarness({ sink: sink.url, env: { COMMAND_SWEEP_INTERVAL_MS: '100' } });
  });
  afterAll(async () => {
    await h.close();
    await sink.close();
  });

  it('expires a queued command past its TTL and times out a sent one past its deadline, each with its event', async () => {
    const offline = uniqueName('dev');
    const online = uniqueName('dev');
    await h.registerDevice(offline);
    await h.registerDevice(online);
    expect(await h.connected(online)).toBe(204);
    const queued = (await h.request('POST', `/devices/${offline}/commands`, { name: 'never', ttlSeconds: 1 })).body;
    const sent = (await h.request('POST', `/devices/${online}/commands`, { name: 'unanswered', timeoutSeconds: 1 }))
      .body;
    expect([queued.status, sent.status]).toEqual(['QUEUED', 'SENT']);

    const status = async (id: string) => (await h.request('GET', `/commands/${id}`)).body.status as string;
    await eventually(
      async () => ((await status(queued.id)) === 'EXPIRED' && (await status(sent.id)) === 'TIMED_OUT') || undefined,
    );
    const types = (id: string) =>
      sink.received.filter((r) => (r.event?.data as { id?: string } | undefined)?.id === id).map((r) => r.event!.type);
    await sink.waitFor(
      () =>
        types(queued.id).includes('io.kiot.command.expired') && types(sent.id).includes('io.kiot.command.timed_out'),
    );
    // The expired one was never published to the device.
    expect(
      sink.received.filter((r) => r.event?.type === 'io.kiot.mqtt.publish' && r.event.subject === offline),
    ).toHaveLength(0);
  });
});
