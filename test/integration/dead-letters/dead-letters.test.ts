import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDeadLettersApp } from '../../../functions/dead-letters/app.js';
import { deadLettersConfigSchema } from '../../../functions/dead-letters/config.js';
import {
  DEAD_LETTERS_COLLECTION,
  type DeadLetterDocument,
} from '../../../functions/dead-letters/dead-letter-repository.js';
import { mintApiKey } from '../../../shared/api-keys.js';
import { CloudEvent, toBinaryMessage, toStructuredMessage } from '../../../shared/cloudevents.js';
import { loadConfig } from '../../../shared/config.js';
import { createLogger } from '../../../shared/logger.js';
import { createMongo } from '../../../shared/mongo.js';
import { createFunctionServer } from '../../../shared/serve.js';
import { MONGODB_URL, uniqueName } from '../../support/services.js';
import { type SinkServer, startSinkServer } from '../../support/sink-server.js';

// The dead-letter sink over real HTTP (the functions framework) with real MongoDB; the "original
// subscriber" and the Broker (K_SINK) are recording sink servers.
describe('dead-letters: store, list, replay', () => {
  const dbName = uniqueName('dl')
    .replace(/[^A-Za-z0-9_-]/g, '_')
    .slice(0, 60);
  const mongo = createMongo(MONGODB_URL, dbName);
  let subscriber: SinkServer;
  let broker: SinkServer;
  let server: Server;
  let base: string;
  let admin: string;
  let reader: string;

  beforeAll(async () => {
    subscriber = await startSinkServer();
    broker = await startSinkServer();
    const adminKey = await mintApiKey('ops', ['*']);
    const readerKey = await mintApiKey('viewer', ['deadletters:read']);
    admin = adminKey.key;
    reader = readerKey.key;
    const config = loadConfig(deadLettersConfigSchema, {
      MONGODB_URL,
      MONGODB_DB: dbName,
      K_SINK: broker.url,
      API_KEYS: JSON.stringify([adminKey.entry, readerKey.entry]),
      // Only loopback may be replayed to directly; `elsewhere.example` must go through the Broker.
      DEAD_LETTERS_REPLAY_HOSTS: '127.0.0.1',
    });
    const handler = createDeadLettersApp(config, { mongo, logger: createLogger('dead-letters', 'silent') });
    server = createFunctionServer(uniqueName('dead-letters'), handler);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    server?.close();
    await subscriber?.close();
    await broker?.close();
    await (await mongo.db()).dropDatabase().catch(() => undefined);
    await mongo.close();
  });

  const collection = async () => (await mongo.db()).collection<DeadLetterDocument>(DEAD_LETTERS_COLLECTION);

  /** What Knative's dispatcher sends to a dead-letter sink: the event plus its error extensions. */
  function deadLettered(
    type: string,
    data: unknown,
    error: { dest?: string; code?: number; body?: string } = {},
    extra: Record<string, string> = {},
  ): CloudEvent<unknown> {
    return new CloudEvent<unknown>({
      id: uniqueName('ev'),
      source: '/kiot/test',
      type,
      subject: 'dev-1',
      datacontenttype: 'application/json',
      data,
      ...extra,
      ...(error.dest !== undefined ? { knativeerrordest: error.dest } : {}),
      ...(error.code !== undefined ? { knativeerrorcode: String(error.code) } : {}),
      ...(error.body !== undefined ? { knativeerrordata: Buffer.from(error.body).toString('base64') } : {}),
    });
  }

  const deliver = (event: CloudEvent<unknown>, mode: 'binary' | 'structured' = 'binary') => {
    const message = mode === 'binary' ? toBinaryMessage(event) : toStructuredMessage(event);
    return fetch(base, { method: 'POST', headers: message.headers, body: message.body });
  };

  const api = (path: string, init: RequestInit & { key?: string } = {}) =>
    fetch(`${base}${path}`, {
      ...init,
      headers: {
        authorization: `Bearer ${init.key ?? admin}`,
        ...(init.body ? { 'content-type': 'application/json' } : {}),
      },
    });

  async function listAll(query: string): Promise<{ id: string; status: string; event: Record<string, unknown> }[]> {
    const items: { id: string; status: string; event: Record<string, unknown> }[] = [];
    let cursor: string | null = null;
    do {
      const response = await api(`/dead-letters?${query}&limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(response.status).toBe(200);
      const page = (await response.json()) as { items: typeof items; next: string | null };
      items.push(...page.items);
      cursor = page.next;
    } while (cursor);
    return items;
  }

  it('stores any event type with Knative error extensions, idempotent per event and failed destination', async () => {
    // Prepare
    const dest = `${subscriber.url}ingest`;
    const telemetry = deadLettered(
      'io.kiot.telemetry.received',
      { metrics: { t: 21.5 } },
      { dest, code: 500, body: '{"error":{"code":"internal"}}' },
    );
    const unknownType = deadLettered('com.example.anything', { a: 1 }, { dest, code: 422 });

    // Act
    const first = await deliver(telemetry);
    const again = await deliver(telemetry);
    const other = await deliver(unknownType, 'structured');
    const toSecondDest = await deliver(
      deadLettered('io.kiot.telemetry.received', {}, { dest: `${subscriber.url}other` }, {}),
    );

    // Assess
    expect([first.status, again.status, other.status, toSecondDest.status]).toEqual([204, 204, 204, 204]);
    const docs = await (await collection()).find({ 'event.id': telemetry.id }).toArray();
    expect(docs).toHaveLength(1);
    expect(docs[0]).toMatchObject({
      status: 'pending',
      deadLetterCount: 2,
      event: { id: telemetry.id, type: 'io.kiot.telemetry.received', subject: 'dev-1', source: '/kiot/test' },
      error: { destination: dest, code: 500, text: '{"error":{"code":"internal"}}' },
    });
    expect(Object.keys(docs[0]!.event.extensions)).not.toContain('knativeerrordest');
    expect(await (await collection()).countDocuments({ 'event.id': unknownType.id })).toBe(1);
  });

  it('keeps the same event id failing at two destinations as two records', async () => {
    const id = uniqueName('twice');
    for (const path of ['a', 'b']) {
      const event = new CloudEvent({
        id,
        source: '/kiot/test',
        type: 'io.kiot.device.connected',
        data: {},
        knativeerrordest: `${subscriber.url}${path}`,
      });
      expect((await deliver(event)).status).toBe(204);
    }
    expect(await (await collection()).countDocuments({ 'event.id': id })).toBe(2);
  });

  it('lists with filters and cursor pagination, newest first, each record once', async () => {
    const type = `io.kiot.test.${Date.now().toString(36)}`;
    const ids: string[] = [];
    for (let i = 0; i < 5; i += 1) {
      const event = deadLettered(type, { i }, { dest: `${subscriber.url}list`, code: 503 });
      ids.push(event.id);
      expect((await deliver(event)).status).toBe(204);
    }
    const listed = await listAll(`type=${type}&status=pending`);
    expect(listed.map((item) => item.event.id).sort()).toEqual([...ids].sort());
    expect(listed.every((item) => item.status === 'pending')).toBe(true);
    expect((await listAll(`type=${type}&status=replayed`)).length).toBe(0);
    expect((await listAll(`destination=${encodeURIComponent(`${subscriber.url}list`)}`)).length).toBe(5);
    const bad = await api('/dead-letters?limit=0');
    expect(bad.status).toBe(400);
  });

  it('summarises what waits and which devices were refused recently (GET /dead-letter-summary)', async () => {
    const failing = uniqueName('failing');
    const quiet = uniqueName('quiet');
    const start = new Date().toISOString();
    const before = (await (await api('/dead-letter-summary')).json()) as { pending: number };
    for (const [subject, n] of [
      [failing, 3],
      [quiet, 1],
    ] as const) {
      for (let i = 0; i < n; i += 1) {
        const event = deadLettered(
          'io.kiot.telemetry.received',
          { i },
          { code: 422, body: '{"error":{"code":"rate_limited"}}' },
          { subject },
        );
        expect((await deliver(event)).status).toBe(204);
      }
    }
    const answer = await api(`/dead-letter-summary?since=${encodeURIComponent(start)}`, { key: reader });
    expect(answer.status).toBe(200);
    const summary = (await answer.json()) as {
      since: string;
      pending: number;
      failingDevices: {
        deviceId: string;
        refusals: number;
        lastAt: string;
        lastType: string;
        lastError: { code: number; text?: string };
      }[];
    };
    expect(summary.since).toBe(start);
    expect(summary.pending - before.pending).toBe(4);
    const byDevice = Object.fromEntries(summary.failingDevices.map((d) => [d.deviceId, d]));
    expect(byDevice[failing]).toMatchObject({
      refusals: 3,
      lastType: 'io.kiot.telemetry.received',
      lastError: { code: 422 },
    });
    expect(byDevice[failing]!.lastError.text).toContain('rate_limited');
    expect(byDevice[quiet]).toMatchObject({ refusals: 1 });
    // Most recent first.
    expect(summary.failingDevices[0]!.deviceId).toBe(quiet);
    const later = new Date(Date.now() + 60_000).toISOString();
    const none = (await (await api(`/dead-letter-summary?since=${encodeURIComponent(later)}`)).json()) as {
      failingDevices: unknown[];
    };
    expect(none.failingDevices).toEqual([]);
    expect((await api('/dead-letter-summary?devices=0')).status).toBe(400);
  });

  it('replays one to the original subscriber without the error extensions and marks it replayed', async () => {
    // Prepare
    const path = `replay-${Date.now().toString(36)}`;
    const event = deadLettered(
      'io.kiot.command.acknowledged',
      { status: 'succeeded', n: [1, 2] },
      { dest: `${subscriber.url}${path}`, code: 500 },
      { partitionkey: 'dev-1' },
    );
    expect((await deliver(event)).status).toBe(204);
    const [record] = await listAll(`eventId=${event.id}`);

    // Act
    const response = await api(`/dead-letters/${record!.id}/replay`, { method: 'POST' });

    // Assess
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ outcome: 'replayed', destination: `${subscriber.url}${path}` });
    const received = subscriber.received.find((r) => r.path === `/${path}`);
    expect(received?.event).toMatchObject({
      id: event.id,
      type: event.type,
      source: event.source,
      subject: 'dev-1',
      partitionkey: 'dev-1',
      data: { status: 'succeeded', n: [1, 2] },
    });
    expect(Object.keys(received!.headers).filter((h) => h.startsWith('ce-knativeerror'))).toEqual([]);
    const stored = await (await api(`/dead-letters/${record!.id}`)).json();
    expect(stored).toMatchObject({ status: 'replayed', replayCount: 1, replayedTo: `${subscriber.url}${path}` });
  });

  it('keeps a dead letter pending when the replay fails, and answers 502', async () => {
    const path = `fails-${Date.now().toString(36)}`;
    subscriber.respond = (request) => (request.path === `/${path}` ? { status: 500 } : { status: 202 });
    const event = deadLettered('io.kiot.state.reported', { on: true }, { dest: `${subscriber.url}${path}`, code: 500 });
    expect((await deliver(event)).status).toBe(204);
    const [record] = await listAll(`eventId=${event.id}`);
    const response = await api(`/dead-letters/${record!.id}/replay`, { method: 'POST' });
    expect(response.status).toBe(502);
    expect(await response.json()).toMatchObject({ error: { code: 'replay_failed' } });
    expect(await (await api(`/dead-letters/${record!.id}`)).json()).toMatchObject({
      status: 'pending',
      replayCount: 1,
      lastReplay: { status: 500 },
    });
    subscriber.respond = () => ({ status: 202 });
  });

  it('marks a replayed record pending again when it is dead-lettered once more', async () => {
    const event = deadLettered('io.kiot.device.disconnected', {}, { dest: `${subscriber.url}again`, code: 500 });
    await deliver(event);
    const [record] = await listAll(`eventId=${event.id}`);
    expect((await api(`/dead-letters/${record!.id}/replay`, { method: 'POST' })).status).toBe(200);
    await deliver(event);
    expect(await (await api(`/dead-letters/${record!.id}`)).json()).toMatchObject({
      status: 'pending',
      deadLetterCount: 2,
      replayCount: 1,
    });
  });

  it('replays all pending of a type: to the subscriber, or through the Broker when the destination is not allowed or unknown', async () => {
    // Prepare
    const type = `io.kiot.bulk.${Date.now().toString(36)}`;
    const direct = deadLettered(type, { k: 'direct' }, { dest: `${subscriber.url}bulk`, code: 500 });
    const outside = deadLettered(type, { k: 'outside' }, { dest: 'http://elsewhere.example/hook', code: 500 });
    const noDest = deadLettered(type, { k: 'nodest' });
    for (const event of [direct, outside, noDest]) expect((await deliver(event)).status).toBe(204);

    // Act
    const response = await api('/dead-letters/replay', { method: 'POST', body: JSON.stringify({ type }) });
    const second = await api('/dead-letters/replay', { method: 'POST', body: JSON.stringify({ type }) });

    // Assess
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ replayed: 3, failed: 0, more: false });
    expect(await second.json()).toMatchObject({ replayed: 0, failed: 0 });
    expect(subscriber.received.filter((r) => r.event?.type === type).map((r) => r.event!.id)).toEqual([direct.id]);
    expect(
      broker.received
        .filter((r) => r.event?.type === type)
        .map((r) => r.event!.id)
        .sort(),
    ).toEqual([outside.id, noDest.id].sort());
    expect((await listAll(`type=${type}&status=replayed`)).length).toBe(3);
  });

  it('forwards a reply event of the subscriber to the Broker', async () => {
    const path = `reply-${Date.now().toString(36)}`;
    const replyId = uniqueName('reply');
    subscriber.respond = (request) => {
      if (request.path !== `/${path}`) return { status: 202 };
      const message = toBinaryMessage(
        new CloudEvent({ id: replyId, source: '/kiot/sub', type: 'io.kiot.mqtt.publish', data: { topic: 't' } }),
      );
      return { status: 200, headers: message.headers, body: message.body };
    };
    const event = deadLettered('io.kiot.provisioning.requested', {}, { dest: `${subscriber.url}${path}`, code: 503 });
    await deliver(event);
    const [record] = await listAll(`eventId=${event.id}`);
    expect((await api(`/dead-letters/${record!.id}/replay`, { method: 'POST' })).status).toBe(200);
    await broker.waitFor((received) => received.some((r) => r.event?.id === replyId));
    subscriber.respond = () => ({ status: 202 });
  });

  it('stores and replays a structured event with binary data (data_base64) byte for byte', async () => {
    const bytes = Buffer.from([0, 1, 2, 250, 255]);
    const event = new CloudEvent({
      id: uniqueName('bin'),
      source: '/kiot/test',
      type: 'io.kiot.binary',
      data_base64: bytes.toString('base64'),
      knativeerrordest: `${subscriber.url}bin`,
    });
    expect((await deliver(event, 'structured')).status).toBe(204);
    const [record] = await listAll(`eventId=${event.id}`);
    expect(record!.event.data_base64).toBe(bytes.toString('base64'));
    expect((await api(`/dead-letters/${record!.id}/replay`, { method: 'POST' })).status).toBe(200);
    const received = subscriber.received.find((r) => r.path === '/bin');
    expect(received?.event?.data_base64).toBe(bytes.toString('base64'));
  });

  it('requires an API key with the right scope for the app routes', async () => {
    expect((await fetch(`${base}/dead-letters`)).status).toBe(401);
    expect((await api('/dead-letters', { key: reader })).status).toBe(200);
    expect((await api('/dead-letters/replay', { method: 'POST', key: reader, body: '{}' })).status).toBe(403);
    expect((await api('/dead-letters/nope')).status).toBe(400);
    expect((await api('/dead-letters/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA')).status).toBe(404);
  });
});
