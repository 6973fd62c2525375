import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BridgeHandle } from '../../../bridge/bridge.js';
import { uniqueName } from '../../support/services.js';
import { type SinkServer, startSinkServer } from '../../support/sink-server.js';
import { connectDevice, forwardedIn, startTestBridge } from './helpers.js';

// The bridge scales out: members of one shared-subscription group (the StatefulSet's pods, each with its own
// stable client ids) share the devices' load evenly, and nothing is lost while a member joins or one drains.
// Each member posts to a sink of its own, so the sinks tell which member carried what.
describe('bridge scale-out: two, then three members of one share group under load', () => {
  const group = uniqueName('scale');
  const devices = Array.from({ length: 20 }, (_, i) => uniqueName(`d${i}`));
  const ours = new Set(devices);
  const members: { name: string; sink: SinkServer; handle?: BridgeHandle }[] = [];
  let deadLetter: SinkServer;
  let clients: MqttClient[] = [];
  let sequence = 0;

  async function join(name: string) {
    const sink = await startSinkServer();
    const { bridge } = await startTestBridge({
      sink,
      deadLetter,
      env: { BRIDGE_SHARE_GROUP: group, BRIDGE_SESSIONS: '2', BRIDGE_CLIENT_ID: uniqueName(name) },
    });
    // A sink that takes a few milliseconds keeps messages in flight at every member while one joins or drains.
    sink.respond = () => ({ status: 202, delayMs: 3 });
    members.push({ name, sink, handle: bridge });
  }

  /** The ids of our devices' messages a member's sink accepted. */
  const carried = (sink: SinkServer) =>
    forwardedIn(sink.received)
      .filter((m) => ours.has(m.subject ?? ''))
      .map((m) => m.id);
  const delivered = () => new Set(members.flatMap((m) => carried(m.sink)));

  /** Publishes `count` messages spread over the devices, all at once (QoS 1); `during` runs after the first quarter. */
  async function burst(count: number, during?: () => Promise<void>): Promise<string[]> {
    const ids: string[] = [];
    const sends: Promise<unknown>[] = [];
    for (let i = 0; i < count; i += 1) {
      const n = sequence++;
      const device = devices[n % devices.length]!;
      ids.push(`${device}:m${n}@1`);
      sends.push(
        clients[n % clients.length]!.publishAsync(
          `devices/${device}/telemetry`,
          JSON.stringify({ msgId: `m${n}`, ts: 1, metrics: { n } }),
          { qos: 1 },
        ),
      );
      if (i === Math.floor(count / 4) && during) sends.push(during());
    }
    await Promise.all(sends);
    return ids;
  }

  /** Until every id reached one of the sinks (they are polled, not the clock). */
  async function waitAll(ids: string[]) {
    for (let i = 0; ; i += 1) {
      const got = delivered();
      const missing = ids.filter((id) => !got.has(id));
      if (missing.length === 0) return;
      if (i > 2_400) throw new Error(`${missing.length} of ${ids.length} not delivered, e.g. ${missing.slice(0, 3)}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** A steady phase: each live member's share of `count` messages must be within ±20 % of an even share. */
  async function steadyShares(count: number): Promise<Record<string, number>> {
    const live = members.filter((m) => m.handle);
    const before = new Map(live.map((m) => [m.name, new Set(carried(m.sink))]));
    const ids = await burst(count);
    await waitAll(ids);
    const shares: Record<string, number> = {};
    for (const m of live) shares[m.name] = carried(m.sink).filter((id) => !before.get(m.name)!.has(id)).length;
    return shares;
  }

  beforeAll(async () => {
    deadLetter = await startSinkServer();
    clients = await Promise.all(Array.from({ length: 4 }, () => connectDevice()));
    await join('a');
    await join('b');
  });
  afterAll(async () => {
    for (const client of clients) await client.endAsync().catch(() => undefined);
    for (const m of members) {
      await m.handle?.close().catch(() => undefined);
      await m.sink.close();
    }
    await deadLetter.close();
  });

  it('two members share the load evenly', { timeout: 180_000 }, async () => {
    const shares = await steadyShares(1200);
    for (const share of Object.values(shares)) expect(share, JSON.stringify(shares)).toBeGreaterThanOrEqual(600 * 0.8);
    for (const share of Object.values(shares)) expect(share, JSON.stringify(shares)).toBeLessThanOrEqual(600 * 1.2);
  });

  it('a third member joins under load: nothing is lost, and the three then share evenly', {
    timeout: 180_000,
  }, async () => {
    const ids = await burst(1200, () => join('c'));
    await waitAll(ids);
    const shares = await steadyShares(1200);
    expect(Object.keys(shares)).toEqual(['a', 'b', 'c']);
    for (const share of Object.values(shares)) expect(share, JSON.stringify(shares)).toBeGreaterThanOrEqual(400 * 0.8);
    for (const share of Object.values(shares)) expect(share, JSON.stringify(shares)).toBeLessThanOrEqual(400 * 1.2);
  });

  it('one member drains under load: nothing is lost, and the two left share evenly', { timeout: 180_000 }, async () => {
    const leaving = members.find((m) => m.name === 'a')!;
    const ids = await burst(1200, async () => {
      await leaving.handle!.drain();
      leaving.handle = undefined;
    });
    await waitAll(ids);
    const shares = await steadyShares(1200);
    expect(Object.keys(shares)).toEqual(['b', 'c']);
    for (const share of Object.values(shares)) expect(share, JSON.stringify(shares)).toBeGreaterThanOrEqual(600 * 0.8);
    for (const share of Object.values(shares)) expect(share, JSON.stringify(shares)).toBeLessThanOrEqual(600 * 1.2);
    // Every message of the whole test reached a sink, none was refused.
    expect(delivered().size).toBe(sequence);
    expect(deadLetter.received.filter((r) => devices.some((d) => r.body.includes(d)))).toHaveLength(0);
  });
});
