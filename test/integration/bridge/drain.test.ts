import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueName } from '../../support/services.js';
import { type SinkServer, startSinkServer } from '../../support/sink-server.js';
import { carries, connectDevice, forwarded, forwardedIn, startTestBridge } from './helpers.js';

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
        device.publishAsync(
          `devices/${deviceId}/telemetry`,
          JSON.stringify({ msgId: `m${n}`, ts: 1, metrics: { n } }),
          {
            qos: 1,
          },
        );
      const total = 120;
      for (let n = 0; n < 40; n += 1) await publish(n);
      const drained = leaving.bridge.drain();
      for (let n = 40; n < 80; n += 1) await publish(n);
      await drained;
      for (let n = 80; n < total; n += 1) await publish(n);

      const ids = () =>
        new Set(
          forwardedIn(sink.received)
            .filter((m) => m.subject === deviceId)
            .map((m) => m.id),
        );
      await sink.waitFor(() => ids().size === total, 30_000);
      expect([...ids()].sort()).toEqual(Array.from({ length: total }, (_, n) => `${deviceId}:m${n}@1`).sort());
      expect(deadLetter.received.filter((r) => r.body.includes(deviceId))).toHaveLength(0);
    } finally {
      sink.respond = () => ({ status: 202 });
      await device.endAsync();
      await staying.bridge.close();
    }
  });

  it('ends within its deadline while the sink is down, and the unacknowledged message comes back to the same session id', async () => {
    const clientId = uniqueName('stuck');
    const env = { BRIDGE_CLIENT_ID: clientId, BRIDGE_SESSIONS: '1', DRAIN_TIMEOUT_MS: '300' };
    const deviceId = uniqueName('d');
    // Down for this device only: retained messages of other tests' devices go through.
    sink.respond = (request) => ({ status: carries(request, deviceId) ? 503 : 202 });
    const first = await startTestBridge({ sink, deadLetter, env });
    const device = await connectDevice();
    try {
      await device.publishAsync(
        `devices/${deviceId}/telemetry`,
        JSON.stringify({ msgId: 'm1', ts: 1, metrics: { n: 1 } }),
        {
          qos: 1,
        },
      );
      await sink.waitFor(() => sink.received.some((r) => carries(r, deviceId)), 10_000);
      const started = Date.now();
      await first.bridge.drain();
      // The deadline (300 ms) plus at most the one second granted to a graceful end, plus the unsubscribe.
      expect(Date.now() - started).toBeLessThan(5_000);

      const delivered: string[] = [];
      sink.respond = (request) => {
        for (const message of forwarded(request)) if (message.subject === deviceId) delivered.push(message.id);
        return { status: 202 };
      };
      const second = await startTestBridge({
        sink,
        deadLetter,
        env: { ...env, BRIDGE_SHARE_GROUP: first.config.BRIDGE_SHARE_GROUP },
      });
      try {
        await sink.waitFor(() => delivered.length > 0, 20_000);
        expect(delivered[0]).toBe(`${deviceId}:m1@1`);
      } finally {
        await second.bridge.close();
      }
    } finally {
      sink.respond = () => ({ status: 202 });
      await device.endAsync();
    }
  });
});
