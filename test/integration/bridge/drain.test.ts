import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSinkServer, type SinkServer } from '../../support/sink-server.js';
import { uniqueName } from '../../support/services.js';
import { connectDevice, startTestBridge } from './helpers.js';

// ARCHITECTURE "Bridge sessions": a member of the shared group that vanishes strands the messages the
// broker keeps assigning to it; a member is retired only by draining (unsubscribe, finish, end).
describe('draining one of two bridge members in one share group', () => {
  let sink: SinkServer;
  let deadLetter: SinkServer;
  beforeAll(async () => {
    sink = await startSinkServer();
    deadLetter = await startSinkServer();
  });
  afterAll(async () => {
    await sink.close();
    await deadLetter.close();
  });

  it('loses nothing: messages published during and after the drain all reach the sink through the other member', async () => {
    const group = uniqueName('g');
    const deviceId = uniqueName('d');
    const env = { BRIDGE_SHARE_GROUP: group, BRIDGE_SESSIONS: '2' };
    const staying = await startTestBridge({ sink, deadLetter, env: { ...env, BRIDGE_CLIENT_ID: uniqueName('stay') } });
    const leaving = await startTestBridge({ sink, deadLetter, env: { ...env, BRIDGE_CLIENT_ID: uniqueName('leave') } });
    // A slow sink keeps work in flight at the member that drains.
    sink.respond = () => ({ status: 202, delayMs: 5 });
    const device = await connectDevice();
    try {
      const publish = (n: number) =>
        device.publishAsync(`devices/${deviceId}/telemetry`, JSON.stringify({ msgId: `m${n}`, metrics: { n } }), { qos: 1 });
      const total = 120;
      for (let n = 0; n < 40; n += 1) await publish(n);
      const drained = leaving.bridge.drain();
      for (let n = 40; n < 80; n += 1) await publish(n);
      await drained;
      for (let n = 80; n < total; n += 1) await publish(n);

      const ids = () => new Set(sink.received.filter((r) => r.event?.subject === deviceId).map((r) => r.event!.id));
      await sink.waitFor(() => ids().size === total, 30_000);
      expect([...ids()].sort()).toEqual(Array.from({ length: total }, (_, n) => `${deviceId}:m${n}`).sort());
      expect(deadLetter.received.filter((r) => r.body.includes(deviceId))).toHaveLength(0);
    } finally {
      sink.respond = () => ({ status: 202 });
      await device.endAsync();
      await staying.bridge.close();
    }
  });
});
