import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CloudEvent, toBinaryMessage } from '../../../shared/cloudevents.js';
import type { SinkServer } from '../../support/sink-server.js';
import { BROKER, routerFixtures, testEvent, trigger } from './helpers.js';

// The router in-process on port 0, real HTTP subscribers (sink servers): ingress and routing.
describe('local event router: ingress and routing', () => {
  const { sink, router } = routerFixtures();
  const ids = (server: SinkServer) => server.received.map((r) => r.event?.id);

  it('delivers an event to exactly the Triggers whose filters match, in binary mode', async () => {
    const [telemetry, anyKiot, publish] = [await sink(), await sink(), await sink()];
    const r = await router({
      services: `telemetry-ingest=${telemetry.url},mqtt-bridge=${publish.url}`,
      manifests: {
        'broker.yaml': BROKER,
        'triggers.yaml': [
          trigger(
            'telemetry',
            '  filter: { attributes: { type: io.kiot.telemetry.received } }\n' +
              '  subscriber: { ref: { apiVersion: serving.knative.dev/v1, kind: Service, name: telemetry-ingest } }\n',
          ),
          trigger(
            'all-kiot',
            `  filters: [{ prefix: { type: io.kiot. } }, { not: { exact: { subject: dev-quiet } } }]\n  subscriber: { uri: "${anyKiot.url}" }\n`,
          ),
          trigger(
            'publish',
            '  filters: [{ exact: { type: io.kiot.mqtt.publish } }]\n  subscriber: { ref: { apiVersion: v1, kind: Service, name: mqtt-bridge } }\n',
          ),
        ].join('---\n'),
      },
    });
    const sample = testEvent('io.kiot.telemetry.received');
    const quiet = testEvent('io.kiot.telemetry.received', { subject: 'dev-quiet' });
    const other = testEvent('com.example.other');

    expect((await r.post(sample)).status).toBe(202);
    expect((await r.post(quiet, 'structured')).status).toBe(202);
    expect((await r.post(other)).status).toBe(202);
    await r.idle();

    expect(ids(telemetry).sort()).toEqual([sample.id, quiet.id].sort());
    expect(ids(anyKiot)).toEqual([sample.id]);
    expect(publish.received).toHaveLength(0);
    // Binary mode on the wire, as the Knative broker delivers; the broker TTL is not shown to subscribers.
    const wire = telemetry.received.find((r) => r.event?.id === sample.id)!;
    expect(wire.headers).toMatchObject({
      'ce-id': sample.id,
      'ce-type': 'io.kiot.telemetry.received',
      prefer: 'reply',
    });
    expect(wire.headers['ce-knativebrokerttl']).toBeUndefined();
    expect(wire.headers['ce-knativearrivaltime']).toEqual(expect.any(String));
    expect(wire.event?.data).toEqual({ n: 1 });

    const metrics = await (await fetch(`${r.url}/metrics`)).text();
    expect(metrics).toContain('kiot_router_events_accepted_total{broker="kiot/default"} 3');
    expect(metrics).toContain('kiot_router_events_delivered_total{trigger="kiot/telemetry"} 2');
  });

  it('answers 400 for a bad envelope, 404 for an unknown broker or path, 405 for a GET on the ingress, and serves /healthz', async () => {
    const r = await router({ manifests: { 'broker.yaml': BROKER } });
    const noId = await fetch(r.ingress, {
      method: 'POST',
      headers: { 'ce-specversion': '1.0', 'ce-type': 'x', 'ce-source': '/t', 'content-type': 'application/json' },
      body: '{}',
    });
    expect(noId.status).toBe(400);
    expect(await noId.json()).toMatchObject({ error: { code: 'invalid_cloudevent' } });
    const plain = await fetch(r.ingress, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"a":1}',
    });
    expect(plain.status).toBe(400);

    expect((await r.post(testEvent('x'), 'binary', '/kiot/nope')).status).toBe(404);
    expect((await r.post(testEvent('x'), 'binary', '/other/default')).status).toBe(404);
    expect((await fetch(`${r.url}/a/b/c`)).status).toBe(404);
    expect((await fetch(r.ingress)).status).toBe(405);

    const health = await fetch(`${r.url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok', brokers: ['kiot/default'] });
  });

  it('routes a reply event back into the broker, to the Triggers that match it', async () => {
    const [pinger, ponger] = [await sink(), await sink()];
    pinger.respond = (request) => {
      const reply = new CloudEvent({
        id: `${request.event!.id}-reply`,
        source: '/kiot/pinger',
        type: 'io.kiot.test.pong',
        data: { n: 2 },
      });
      const message = toBinaryMessage(reply);
      return { status: 200, headers: message.headers, body: message.body };
    };
    const r = await router({
      manifests: {
        'broker.yaml': BROKER,
        'ping.yaml': trigger(
          'ping',
          `  filters: [{ exact: { type: io.kiot.test.ping } }]\n  subscriber: { uri: "${pinger.url}" }\n`,
        ),
        'pong.yaml': trigger(
          'pong',
          `  filters: [{ exact: { type: io.kiot.test.pong } }]\n  subscriber: { uri: "${ponger.url}" }\n`,
        ),
      },
    });
    const ping = testEvent('io.kiot.test.ping');
    expect((await r.post(ping)).status).toBe(202);
    await ponger.waitFor((received) => received.length === 1);
    await r.idle();

    expect(ponger.received[0]!.event).toMatchObject({
      id: `${ping.id}-reply`,
      type: 'io.kiot.test.pong',
      data: { n: 2 },
    });
    expect(ids(pinger)).toEqual([ping.id]);
    expect(await r.deadLetters()).toEqual([]);
  });

  it('ends a reply loop when the broker TTL runs out, with a dead-letter record', async () => {
    const echo = await sink();
    echo.respond = (request) => {
      const reply = new CloudEvent({
        id: `${request.event!.id}+`,
        source: '/kiot/echo',
        type: 'io.kiot.test.loop',
        data: {},
      });
      const message = toBinaryMessage(reply);
      return { status: 200, headers: message.headers, body: message.body };
    };
    const r = await router({
      manifests: { 'broker.yaml': BROKER, 'loop.yaml': trigger('loop', `  subscriber: { uri: "${echo.url}" }\n`) },
    });
    expect((await r.post(testEvent('io.kiot.test.loop', { knativebrokerttl: 4 }))).status).toBe(202);
    await r.idle();

    // TTL 4 → 3 at the ingress, then 2 and 1 for the replies; the third reply would reach 0.
    expect(echo.received).toHaveLength(3);
    const records = await r.deadLetters();
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      reason: 'ttl_exhausted',
      broker: 'kiot/default',
      event: { type: 'io.kiot.test.loop' },
    });
  });

  it('loads the real manifests in knative/ and routes io.kiot.mqtt.publish to the mapped mqtt-bridge URL', async () => {
    const [bridge, deadLetters] = [await sink(), await sink()];
    const r = await router({
      dir: fileURLToPath(new URL('../../../knative/', import.meta.url)),
      services: `mqtt-bridge=${bridge.url},dead-letters=${deadLetters.url}`,
    });
    const publish = testEvent('io.kiot.mqtt.publish', {
      data: { topic: 'devices/dev-1/commands/c1', payload: '{}', qos: 1, retain: false },
    });
    expect((await r.post(publish)).status).toBe(202);
    expect((await r.post(testEvent('io.kiot.telemetry.received'))).status).toBe(202);
    await r.idle();

    expect(ids(bridge)).toEqual([publish.id]);
    expect(bridge.received[0]!.event?.data).toEqual({
      topic: 'devices/dev-1/commands/c1',
      payload: '{}',
      qos: 1,
      retain: false,
    });
    expect(deadLetters.received).toHaveLength(0);
  });

  it('routes the real Triggers’ <name>-events subscribers to the one local process of each function', async () => {
    // In a cluster telemetry-ingest's Triggers address its cluster-local telemetry-ingest-events Service; locally one
    // process serves both roles, mapped by the function's name (as npm start maps it), unless -events is mapped too.
    const [ingest, registry, deadLetters] = [await sink(), await sink(), await sink()];
    const r = await router({
      dir: fileURLToPath(new URL('../../../knative/', import.meta.url)),
      services: `telemetry-ingest=${ingest.url},device-registry=${registry.url},dead-letters=${deadLetters.url}`,
    });
    const sample = testEvent('io.kiot.telemetry.received');
    const provisioning = testEvent('io.kiot.provisioning.requested');
    expect((await r.post(sample)).status).toBe(202);
    expect((await r.post(provisioning)).status).toBe(202);
    await r.idle();
    expect(ids(ingest)).toEqual([sample.id]);
    expect(ids(registry)).toEqual([provisioning.id]);
    expect(deadLetters.received).toHaveLength(0);
  });

  it('stands in for the dead-letter service: POST /dead-letters appends, GET lists', async () => {
    const r = await router({ manifests: { 'broker.yaml': BROKER } });
    const event = testEvent('io.kiot.telemetry.received', { knativeerrorcode: '422', knativeerrordest: 'http://x/' });
    const response = await fetch(`${r.url}/dead-letters`, { method: 'POST', ...toBinaryMessage(event) });
    expect(response.status).toBe(202);
    const bad = await fetch(`${r.url}/dead-letters`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(bad.status).toBe(400);
    expect(await r.deadLetters()).toEqual([
      {
        at: expect.any(String),
        reason: 'received',
        event: expect.objectContaining({ id: event.id, knativeerrorcode: '422', data: { n: 1 } }),
      },
    ]);
  });
});
