import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PrivateTopology, startPrivateTopology } from '../../support/redis-topology.js';
import { uniqueName } from '../../support/services.js';
import { openStream, type Stream } from '../../support/sse.js';
import { type Harness, startHarness, storedSamples, TYPES } from '../telemetry-ingest/harness.js';

// The master holding a device's slot dies while its telemetry and state reports stream in: the function
// answers 503 (never 500) until a replica takes over, then goes on without a restart, and every message it
// acknowledged — and, after the router's retries, every message sent — is stored exactly once. A browser's live
// stream of the device hears `gap` (its subscription was lost with the master) and then the device's new samples.
describe.each(['cluster', 'sentinel'] as const)('telemetry-ingest across a Redis %s failover', (kind) => {
  let topology: PrivateTopology;
  let h: Harness;
  let live: Stream;
  const device = uniqueName('dev');

  beforeAll(async () => {
    topology = await startPrivateTopology(kind);
    h = await startHarness({ DEVICE_CACHE_TTL_MS: '0' }, { redisUrl: topology.url });
    await h.addDevice(device);
    live = await openStream(`${h.base}/devices/${device}/telemetry/stream`, h.apiKey);
  }, 120_000);

  afterAll(async () => {
    live?.close();
    await h?.close();
    await topology?.stop();
  });

  let telemetryConflicts = 0;

  /** What the router does: deliver again until the answer is 2xx; every other answer is recorded. */
  async function deliverUntilAccepted(type: string, id: string, data: unknown, statuses: number[]): Promise<void> {
    for (;;) {
      const status = (await h.send(type, device, data, { id })).status;
      statuses.push(status);
      if (type === TYPES.telemetry && status === 409) telemetryConflicts += 1;
      if (status < 300) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  it('answers 503 while the slot has no master, then stores every message once and every report in the shadow', async () => {
    const statuses: number[] = [];
    const total = 60;
    let sent = 0;
    let killed = false;
    // Four deliveries at a time, as a Trigger's dispatcher has several in flight; a state report every 5th.
    const workers = Array.from({ length: 4 }, async () => {
      while (sent < total) {
        const i = sent++;
        if (i === 20) {
          topology.kill(await topology.masterOf(`{${device}}`));
          killed = true;
        }
        const [type, data] =
          i % 5 === 0 ? [TYPES.state, { [`k${i}`]: i }] : [TYPES.telemetry, { metrics: { i }, ts: Date.now() }];
        await deliverUntilAccepted(type, `${device}-${i}`, data, statuses);
      }
    });
    await Promise.all(workers);

    expect(killed).toBe(true);
    // The outage was met, and answered as one: retried, never a 500. A state report's redelivery that overtakes
    // the release of its failed attempt's mark may hear 409 (in progress), which the Broker retries too;
    // telemetry holds no mark (its samples' unique _id is the dedup), so it never does.
    expect(statuses).toContain(503);
    expect(statuses.filter((status) => status >= 300 && status !== 503 && status !== 409)).toEqual([]);
    expect(telemetryConflicts).toBe(0);
    const stored = await storedSamples(h, device);
    expect(stored).toHaveLength(total - total / 5);
    expect(new Set(stored.map((doc) => doc.eventId)).size).toBe(stored.length);
    // Every report acknowledged before, during and after the failover is in the shadow, in Redis and MongoDB.
    const reported = Object.fromEntries(Array.from({ length: total / 5 }, (_, j) => [`k${j * 5}`, j * 5]));
    const view = (await (await h.get(`/devices/${device}/state`)).json()) as { shadow: { reported: unknown } };
    expect(view.shadow.reported).toEqual(reported);
    const durable = await (await h.mongo.db()).collection('shadows').findOne({ _id: device as never });
    expect(durable?.reported).toEqual(reported);
    await live.waitFor((events) => events.some((event) => event.event === 'gap'), 'a gap on the live stream');
  }, 120_000);

  it('keeps serving after the failover without a restart', async () => {
    const status = (await h.send(TYPES.telemetry, device, { metrics: { after: 1 } }, { id: `${device}-after` })).status;
    expect(status).toBe(204);
    // The live stream is subscribed again (on the new master): it hears the new sample.
    await live.waitFor(
      (events) => events.some((event) => event.event === 'samples' && event.data.includes('"after"')),
      'the sample stored after the failover, live',
    );
  });
});
