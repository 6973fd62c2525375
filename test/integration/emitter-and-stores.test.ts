import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEmitter } from '../../shared/emitter.js';
import { type AppError, DependencyUnavailableError } from '../../shared/errors.js';
import { createMongo, withMongo } from '../../shared/mongo.js';
import { createRedis, withRedis } from '../../shared/redis.js';
import { freePort } from '../support/ports.js';
import { MONGODB_URL, REDIS_URL, uniqueName } from '../support/services.js';
import { type SinkServer, startSinkServer } from '../support/sink-server.js';

/** A port nothing listens on. */
const closedPort = freePort;

describe('emitter', () => {
  let sink: SinkServer;
  beforeAll(async () => {
    sink = await startSinkServer();
  });
  afterAll(() => sink.close());

  it('POSTs a binary-mode CloudEvent with its source, subject and a given id', async () => {
    const emitter = createEmitter({ sink: sink.url, source: '/kiot/test' });
    const id = uniqueName('evt');
    await emitter.emit({ type: 'io.kiot.test.emitted', subject: 'dev-1', id, data: { a: 1 } });
    const request = sink.received.find((r) => r.event?.id === id);
    expect(request?.headers['ce-source']).toBe('/kiot/test');
    expect(request?.event).toMatchObject({ type: 'io.kiot.test.emitted', subject: 'dev-1', data: { a: 1 } });
  });

  it('retries a 503 and succeeds once the sink recovers', async () => {
    const id = uniqueName('retry');
    let refusals = 2;
    sink.respond = (r) => (r.event?.id === id && refusals-- > 0 ? { status: 503 } : { status: 202 });
    await createEmitter({ sink: sink.url, source: '/kiot/test' }).emit({ type: 'io.kiot.test.emitted', id, data: {} });
    expect(sink.received.filter((r) => r.event?.id === id)).toHaveLength(3);
    sink.respond = () => ({ status: 202 });
  });

  it('gives up with a 503 error when the sink stays down, and a 500 when it refuses the event', async () => {
    const down = createEmitter({ sink: `http://127.0.0.1:${await closedPort()}/`, source: '/t', attempts: 2 });
    await expect(down.emit({ type: 'x', data: {} })).rejects.toBeInstanceOf(DependencyUnavailableError);
    sink.respond = () => ({ status: 400 });
    const refused = createEmitter({ sink: sink.url, source: '/t' });
    await expect(refused.emit({ type: 'x', data: {} })).rejects.toMatchObject({
      status: 500,
      code: 'event_rejected_by_sink',
    });
    sink.respond = () => ({ status: 202 });
  });
});

describe('store clients', () => {
  it('connect lazily once and are reused', async () => {
    const mongo = createMongo(
      MONGODB_URL,
      uniqueName('db')
        .replace(/[^A-Za-z0-9_-]/g, '_')
        .slice(0, 60),
    );
    const [a, b] = await Promise.all([mongo.db(), mongo.db()]);
    expect(a.databaseName).toBe(b.databaseName);
    await a.collection('probe').insertOne({ _id: 'x' as never });
    expect(await b.collection('probe').countDocuments()).toBe(1);
    await a.dropDatabase();
    await mongo.close();
    const redis = createRedis(REDIS_URL);
    const [r1, r2] = await Promise.all([redis.client(), redis.client()]);
    expect(r1).toBe(r2);
    await redis.close();
  });

  it('turn an unreachable MongoDB or Redis into a 503 DependencyUnavailableError', async () => {
    const port = await closedPort();
    const mongo = createMongo(`mongodb://127.0.0.1:${port}`, 'x', { serverSelectionTimeoutMS: 300 });
    const mongoError = await withMongo(() => mongo.db()).catch((error: unknown) => error);
    expect(mongoError).toBeInstanceOf(DependencyUnavailableError);
    expect((mongoError as AppError).status).toBe(503);
    const redis = createRedis(`redis://127.0.0.1:${port}`, { connectTimeoutMs: 300, reconnect: false });
    const redisError = await withRedis(async () => (await redis.client()).ping()).catch((error: unknown) => error);
    expect(redisError).toBeInstanceOf(DependencyUnavailableError);
    await redis.close();
  });
});
