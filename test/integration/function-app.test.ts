import type { Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { CloudEvent, parseCloudEvent, toBinaryMessage, toStructuredMessage } from '../../shared/cloudevents.js';
import { DependencyUnavailableError, DomainRefusalError } from '../../shared/errors.js';
import { createFunctionApp, eventRoute } from '../../shared/function-app.js';
import { createLogger } from '../../shared/logger.js';
import { createMongo } from '../../shared/mongo.js';
import { createRedis } from '../../shared/redis.js';
import { createFunctionServer } from '../../shared/serve.js';
import { MONGODB_URL, REDIS_URL, uniqueName } from '../support/services.js';

// The shared function entry, served by the real functions framework over real HTTP.
describe('createFunctionApp under the functions framework', () => {
  const name = uniqueName('fn');
  const mongo = createMongo(
    MONGODB_URL,
    uniqueName('db')
      .replace(/[^A-Za-z0-9_-]/g, '_')
      .slice(0, 60),
  );
  const redis = createRedis(REDIS_URL);
  const handled: string[] = [];
  /** The function's error lines. */
  const logged: Record<string, unknown>[] = [];
  let server: Server;
  let base: string;

  beforeAll(async () => {
    const handler = createFunctionApp({
      service: 'test-fn',
      logger: createLogger('test-fn', 'error', { write: (line: string) => void logged.push(JSON.parse(line)) }),
      maxBodyBytes: 1024,
      health: {
        mongodb: async () => (await mongo.db()).command({ ping: 1 }),
        redis: async () => (await redis.client()).ping(),
      },
      events: [
        eventRoute({
          type: 'io.kiot.test.ping',
          data: z.object({ n: z.number() }),
          async handle(event, data) {
            if (data.n === 503) throw new DependencyUnavailableError('mongodb');
            if (data.n === 422) throw new DomainRefusalError('unknown_device', 'no such device');
            if (data.n === 500) throw new TypeError('a bug in the handler');
            handled.push(event.id);
            if (data.n === 7)
              return new CloudEvent({
                id: `${event.id}-reply`,
                source: '/t',
                type: 'io.kiot.test.pong',
                data: { n: 8 },
              });
          },
        }),
      ],
      routes: [
        {
          method: 'POST',
          path: '/echo/:id',
          handle: async (req) => ({ status: 201, body: { id: req.params.id, body: req.body } }),
        },
      ],
    });
    server = createFunctionServer(name, handler);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    server.close();
    await mongo.close();
    await redis.close();
  });

  const post = (path: string, message: { headers: Record<string, string>; body: string | Buffer }) =>
    fetch(`${base}${path}`, { method: 'POST', headers: message.headers, body: message.body });

  it('handles a binary and a structured CloudEvent with 204', async () => {
    const a = new CloudEvent({ id: uniqueName('a'), source: '/t', type: 'io.kiot.test.ping', data: { n: 1 } });
    const b = new CloudEvent({ id: uniqueName('b'), source: '/t', type: 'io.kiot.test.ping', data: { n: 2 } });
    expect((await post('/', toBinaryMessage(a))).status).toBe(204);
    expect((await post('/', toStructuredMessage(b))).status).toBe(204);
    expect(handled).toEqual(expect.arrayContaining([a.id, b.id]));
  });

  it('answers a reply event in binary mode', async () => {
    const event = new CloudEvent({ id: uniqueName('r'), source: '/t', type: 'io.kiot.test.ping', data: { n: 7 } });
    const response = await post('/', toBinaryMessage(event));
    expect(response.status).toBe(200);
    const reply = parseCloudEvent(Object.fromEntries(response.headers), await response.text());
    expect(reply).toMatchObject({ type: 'io.kiot.test.pong', data: { n: 8 } });
  });

  it('maps failures by Knative rules with a problem body', async () => {
    const cases: [unknown, number, string][] = [
      [{ n: 'x' }, 400, 'invalid_input'],
      [{ n: 422 }, 422, 'unknown_device'],
      [{ n: 503 }, 503, 'dependency_unavailable'],
    ];
    for (const [data, status, code] of cases) {
      const event = new CloudEvent({ id: uniqueName('f'), source: '/t', type: 'io.kiot.test.ping', data });
      const response = await post('/', toBinaryMessage(event));
      expect(response.status).toBe(status);
      expect(await response.json()).toMatchObject({ error: { code } });
    }
  });

  it('answers a bug with 500 and no detail, and logs its cause and stack with the event', async () => {
    const event = new CloudEvent({ id: uniqueName('bug'), source: '/t', type: 'io.kiot.test.ping', data: { n: 500 } });
    const response = await post('/', toBinaryMessage(event));
    expect(response.status).toBe(500);
    expect(JSON.stringify(await response.json())).not.toContain('a bug in the handler');
    const line = logged.find((entry) => (entry.ce as { id?: string } | undefined)?.id === event.id);
    expect(line).toMatchObject({ status: 500, err: { type: 'TypeError', message: 'a bug in the handler' } });
    expect((line?.err as { stack?: string } | undefined)?.stack).toContain('function-app.test.ts');
  });

  it('rejects an envelope without ce-id, an unknown type and an oversize event with 4xx', async () => {
    const noId = await fetch(base, {
      method: 'POST',
      headers: {
        'ce-specversion': '1.0',
        'ce-type': 'io.kiot.test.ping',
        'ce-source': '/t',
        'content-type': 'application/json',
      },
      body: '{"n":1}',
    });
    expect(noId.status).toBe(400);
    expect(await noId.json()).toMatchObject({ error: { code: 'invalid_cloudevent' } });
    const unknown = new CloudEvent({ id: 'u', source: '/t', type: 'io.kiot.other', data: {} });
    expect((await post('/', toBinaryMessage(unknown))).status).toBe(400);
    const big = new CloudEvent({
      id: 'big',
      source: '/t',
      type: 'io.kiot.test.ping',
      data: { n: 1, pad: 'x'.repeat(2000) },
    });
    expect((await post('/', toBinaryMessage(big))).status).toBe(413);
  });

  it('serves app routes with JSON problems for malformed JSON, unknown routes and wrong methods', async () => {
    const ok = await fetch(`${base}/echo/d-1`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"a":1}',
    });
    expect(ok.status).toBe(201);
    expect(await ok.json()).toEqual({ id: 'd-1', body: { a: 1 } });
    const malformed = await fetch(`${base}/echo/d-1`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"a":',
    });
    expect(malformed.status).toBe(400);
    expect(await malformed.json()).toMatchObject({ error: { code: expect.any(String) } });
    const missing = await fetch(`${base}/nope`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ error: { code: 'not_found' } });
    const wrongMethod = await fetch(`${base}/echo/d-1`);
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get('allow')).toBe('POST');
    expect(await wrongMethod.json()).toMatchObject({
      error: { code: 'method_not_allowed', details: { allow: 'POST' } },
    });
  });

  it('refuses a request head over 16 KiB with 431 and a malformed request with 400, each with a problem body', async () => {
    const long = await fetch(`${base}/echo/d-1?cursor=${'%C2%90'.repeat(4_000)}`, { method: 'POST', body: '{}' });
    expect(long.status).toBe(431);
    expect(long.headers.get('content-type')).toBe('application/json');
    expect(await long.json()).toMatchObject({ error: { code: 'request_head_too_large' } });
    const { port } = new URL(base);
    const answer = await new Promise<string>((resolve, reject) => {
      let text = '';
      const socket = connect(Number(port), '127.0.0.1', () => socket.write('GET / HTTP/1.1\r\nHost x\r\n\r\n'));
      socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
      socket.on('close', () => resolve(text));
      socket.on('error', reject);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toMatchObject({
      error: { code: 'malformed_request' },
    });
  });

  it('reports health of real MongoDB and Redis, and metrics', async () => {
    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok', checks: { mongodb: 'ok', redis: 'ok' } });
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toContain('kiot_events_total{type="io.kiot.test.ping",status="204"}');
  });
});
