import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDeadLettersApp } from '../../../functions/dead-letters/app.js';
import { deadLettersConfigSchema } from '../../../functions/dead-letters/config.js';
import { mintApiKey } from '../../../shared/api-keys.js';
import { loadConfig } from '../../../shared/config.js';
import { createLogger } from '../../../shared/logger.js';
import { createMongo } from '../../../shared/mongo.js';
import { createFunctionServer } from '../../../shared/serve.js';
import { freePort } from '../../support/ports.js';
import { namesOnDistinctShards } from '../../support/redis-keys.js';
import { MONGODB_URL, uniqueName } from '../../support/services.js';
import { type Harness, startHarness, storedSamples } from './harness.js';

// io.kiot.telemetry.batch: many device messages in one event, each with its own outcome. The refused ones
// reach the real dead-letters service (its own database), from where they can be replayed; the dead-letters
// service's K_SINK is this function, standing in for the Broker that routes the replayed single event here.
describe('telemetry-ingest: telemetry batches', () => {
  let h: Harness;
  let deadLetters: Server;
  let deadLettersBase: string;
  let adminKey: string;
  const dbName = uniqueName('dlb')
    .replace(/[^A-Za-z0-9_-]/g, '_')
    .slice(0, 60);
  const dlMongo = createMongo(MONGODB_URL, dbName);
  // On the test Cluster the two devices live on different masters: a batch's admission, presence and live
  // updates go out as one script per slot.
  const [device, other] = namesOnDistinctShards('bdev', 2) as [string, string];

  beforeAll(async () => {
    const port = await freePort();
    const admin = await mintApiKey('ops', ['*']);
    adminKey = admin.key;
    const config = loadConfig(deadLettersConfigSchema, {
      MONGODB_URL,
      MONGODB_DB: dbName,
      K_SINK: `http://127.0.0.1:${port}/`,
      API_KEYS: JSON.stringify([admin.entry]),
    });
    deadLetters = createFunctionServer(
      uniqueName('dead-letters'),
      createDeadLettersApp(config, { mongo: dlMongo, logger: createLogger('dead-letters', 'silent') }),
    );
    await new Promise<void>((resolve) => deadLetters.listen(0, '127.0.0.1', resolve));
    deadLettersBase = `http://127.0.0.1:${(deadLetters.address() as AddressInfo).port}`;
    h = await startHarness(
      { DEAD_LETTER_SINK: `${deadLettersBase}/`, ALERT_RULE_CACHE_TTL_MS: '0', DEVICE_CACHE_TTL_MS: '0' },
      { port },
    );
    await h.addDevice(device);
    await h.addDevice(other);
  });

  afterAll(async () => {
    await h?.close();
    deadLetters?.close();
    await (await dlMongo.db()).dropDatabase().catch(() => undefined);
    await dlMongo.close();
  });

  const listDeadLetters = async (query: string) =>
    (
      (await (
        await fetch(`${deadLettersBase}/dead-letters?${query}`, { headers: { authorization: `Bearer ${adminKey}` } })
      ).json()) as {
        items: {
          id: string;
          event: { id: string; subject?: string; type: string; data?: unknown };
          error: { code: number; text?: string };
        }[];
      }
    ).items;

  it('stores a batch exactly once; the same batch again stores nothing new', async () => {
    const items = Array.from({ length: 50 }, (_, i) => ({
      id: uniqueName('ev'),
      subject: i % 2 === 0 ? device : other,
      data: i % 5 === 0 ? [{ metrics: { n: i } }, { metrics: { n: i + 0.5 } }] : { metrics: { n: i } },
    }));
    const first = await h.sendBatch(items);
    expect(first.status).toBe(204);
    const count = async () => (await storedSamples(h, device)).length + (await storedSamples(h, other)).length;
    expect(await count()).toBe(60);
    const again = await h.sendBatch(items);
    expect(again.status).toBe(204);
    expect(await count()).toBe(60);
    const metrics = await (await fetch(`${h.base}/metrics`)).text();
    expect(metrics).toMatch(/kiot_telemetry_duplicates_total 50\b/);
    // Presence: each device seen once per batch, at its newest message.
    const state = (await (await h.get(`/devices/${device}/state`)).json()) as { presence: { status: string } };
    expect(state.presence.status).toBe('online');
  });

  it('stores the valid items and refuses each invalid one visibly: errors topic, dead-letter store, 2xx', async () => {
    const stranger = uniqueName('unregistered');
    const good = [
      { id: uniqueName('ok'), subject: device, data: { metrics: { t: 1 } } },
      { id: uniqueName('ok'), subject: other, data: { metrics: { t: 2 } } },
    ];
    const invalidPayload = { id: uniqueName('bad'), subject: device, data: { metrics: { t: 'hot' } } };
    const unknownDevice = { id: uniqueName('who'), subject: stranger, data: { metrics: { t: 3 } } };
    const before = (await storedSamples(h, device)).length;
    const answer = await h.sendBatch([good[0]!, invalidPayload, unknownDevice, good[1]!]);
    expect(answer.status).toBe(204);
    expect((await storedSamples(h, device)).length).toBe(before + 1);
    expect((await storedSamples(h, device)).some((doc) => doc.eventId === good[0]!.id)).toBe(true);
    expect((await storedSamples(h, other)).some((doc) => doc.eventId === good[1]!.id)).toBe(true);

    // The device hears why, as for a single event.
    await h.sink.waitFor(() => h.notices(device).some((n) => n.eventId === invalidPayload.id));
    expect(h.notices(device).find((n) => n.eventId === invalidPayload.id)).toMatchObject({ code: 'invalid_payload' });
    expect(h.notices(stranger)).toEqual([
      expect.objectContaining({ code: 'unknown_device', eventId: unknownDevice.id }),
    ]);

    // And each refusal is a dead-letter record of the single event it would have been, with the reason.
    const records = await listDeadLetters(`type=io.kiot.telemetry.received&eventId=${unknownDevice.id}`);
    expect(records).toHaveLength(1);
    expect(records[0]!.event).toMatchObject({
      id: unknownDevice.id,
      subject: stranger,
      type: 'io.kiot.telemetry.received',
    });
    expect(records[0]!.error.code).toBe(422);
    expect(records[0]!.error.text).toContain('unknown_device');
    const invalid = await listDeadLetters(`eventId=${invalidPayload.id}`);
    expect(invalid[0]!.error).toMatchObject({ code: 400, text: expect.stringContaining('invalid_payload') });

    // Replayable: once the device is registered, the replay (through the Broker, here: this function) stores it.
    await h.addDevice(stranger);
    const replay = await fetch(`${deadLettersBase}/dead-letters/${records[0]!.id}/replay`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminKey}` },
    });
    expect(await replay.json()).toMatchObject({ outcome: 'replayed' });
    expect((await storedSamples(h, stranger)).map((doc) => doc.eventId)).toEqual([unknownDevice.id]);
  });

  it('refuses an item without a usable envelope on its own, with a record under its place in the batch', async () => {
    const batchId = uniqueName('batch');
    const good = { id: uniqueName('ok'), subject: device, data: { metrics: { t: 5 } } };
    const noId = { subject: device, time: new Date().toISOString(), data: { metrics: { t: 6 } } };
    const answer = await h.sendBatchData([{ ...good, time: new Date().toISOString() }, noId], { id: batchId });
    expect(answer.status).toBe(204);
    expect((await storedSamples(h, device)).some((doc) => doc.eventId === good.id)).toBe(true);
    const records = await listDeadLetters(`eventId=${encodeURIComponent(`${batchId}#1`)}`);
    expect(records[0]!.error).toMatchObject({ code: 400, text: expect.stringContaining('the batch item is invalid') });
  });

  it('evaluates alerts per device over its samples in event-time order, not batch order', async () => {
    const boiler = uniqueName('boiler');
    await h.addDevice(boiler);
    const rule = await fetch(`${h.base}/alert-rules`, {
      method: 'POST',
      headers: { authorization: h.apiKey, 'content-type': 'application/json' },
      body: JSON.stringify({ deviceId: boiler, metric: 'temp', comparison: '>', threshold: 30, forSamples: 2 }),
    });
    expect(rule.status).toBe(201);
    const base = Date.now() - 60_000;
    const at = (seconds: number) => new Date(base + seconds * 1000).toISOString();
    // In batch order the newest comes first; a per-message evaluation would then ignore the older breach.
    await h.sendBatch([
      { subject: boiler, data: { ts: at(3), metrics: { temp: 36 } } },
      { subject: boiler, data: { ts: at(1), metrics: { temp: 10 } } },
      { subject: boiler, data: { ts: at(2), metrics: { temp: 35 } } },
    ]);
    await h.sink.waitFor((received) =>
      received.some((r) => r.event?.type === 'io.kiot.alert.raised' && r.event.subject === boiler),
    );
    const raised = h.sink.received.filter(
      (r) => r.event?.type === 'io.kiot.alert.raised' && r.event.subject === boiler,
    );
    expect(raised).toHaveLength(1);
    expect(raised[0]!.event!.data).toMatchObject({ value: 36, at: at(3) });
  });

  it('answers 400 for a batch that is not a non-empty array', async () => {
    const answer = await h.send('io.kiot.telemetry.batch', device, { items: [] });
    expect(answer.status).toBe(400);
    expect((await h.send('io.kiot.telemetry.batch', device, [])).status).toBe(400);
  });
});
