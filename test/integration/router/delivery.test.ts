import { describe, expect, it } from 'vitest';
import { type SinkServer, startSinkServer } from '../../support/sink-server.js';
import { BROKER, routerFixtures, type TestRouter, testEvent, trigger, waitUntil } from './helpers.js';

// Knative delivery spec semantics over real HTTP: retries, backoff, dead-letter sink, dead-letter file.
describe('local event router: delivery, retries and dead letters', () => {
  const fixtures = routerFixtures();
  const sink = fixtures.sink;
  const router = (manifests: Record<string, string>, services = ''): Promise<TestRouter> =>
    fixtures.router({ manifests: { 'broker.yaml': BROKER, ...manifests }, services });
  /** A Trigger for every event to `subscriber` with this delivery spec (YAML flow mapping). */
  const deliveringTo = (subscriber: string, delivery: string) => ({
    'trigger.yaml': trigger('t', `  subscriber: { uri: "${subscriber}" }\n  delivery: ${delivery}\n`),
  });
  const gaps = (server: SinkServer) => server.received.slice(1).map((r, i) => r.at - server.received[i]!.at);

  it('retries a 503 and stops at the first success: attempts = 1 + retries until success', async () => {
    const subscriber = await sink();
    subscriber.respond = () => (subscriber.received.length < 2 ? { status: 503 } : { status: 202 });
    const r = await router(deliveringTo(subscriber.url, '{ retry: 5, backoffPolicy: linear, backoffDelay: PT0.01S }'));
    const event = testEvent('io.kiot.test.flaky');
    expect((await r.post(event)).status).toBe(202);
    await r.idle();

    expect(subscriber.received.map((x) => x.event?.id)).toEqual([event.id, event.id, event.id]);
    expect(await r.deadLetters()).toEqual([]);
    const metrics = await (await fetch(`${r.url}/metrics`)).text();
    expect(metrics).toContain('kiot_router_delivery_retries_total{trigger="kiot/t"} 2');
    expect(metrics).toContain('kiot_router_events_delivered_total{trigger="kiot/t"} 1');
  });

  it('counts a delivery waiting out its backoff (kiot_router_deliveries_backing_off) until its next attempt', async () => {
    const subscriber = await sink();
    let busy = true;
    subscriber.respond = () => ({ status: busy ? 409 : 202 });
    const r = await router(deliveringTo(subscriber.url, '{ retry: 50, backoffPolicy: linear, backoffDelay: PT0.2S }'));
    const backingOff = async () =>
      Number(/^kiot_router_deliveries_backing_off (\S+)/m.exec(await (await fetch(`${r.url}/metrics`)).text())?.[1]);
    expect((await r.post(testEvent('io.kiot.test.busy'))).status).toBe(202);
    await waitUntil(async () => (await backingOff()) === 1);
    busy = false;
    await r.idle();
    expect(await backingOff()).toBe(0);
    expect(subscriber.received.at(-1)?.event?.type).toBe('io.kiot.test.busy');
  });

  it('spaces retries by backoffDelay * 2^n (exponential) or * n (linear): counts, order and lower bounds', async () => {
    const [exponential, linear, deadLetters] = [await sink(), await sink(), await sink()];
    exponential.respond = () => ({ status: 500 });
    linear.respond = () => ({ status: 429 });
    const r = await router({
      'exponential.yaml': trigger(
        'exponential',
        `  filters: [{ exact: { type: io.kiot.test.exp } }]\n  subscriber: { uri: "${exponential.url}" }\n  ` +
          `delivery: { retry: 3, backoffPolicy: exponential, backoffDelay: PT0.02S, deadLetterSink: { uri: ` +
          `"${deadLetters.url}" } }\n`,
      ),
      'linear.yaml': trigger(
        'linear',
        `  filters: [{ exact: { type: io.kiot.test.lin } }]\n  subscriber: { uri: "${linear.url}" }\n  ` +
          `delivery: { retry: 3, backoffPolicy: linear, backoffDelay: PT0.04S, deadLetterSink: { uri: ` +
          `"${deadLetters.url}" } }\n`,
      ),
    });
    const [exp, lin] = [testEvent('io.kiot.test.exp'), testEvent('io.kiot.test.lin')];
    await r.post(exp);
    await r.post(lin);
    await r.idle();

    expect(exponential.received.map((x) => x.event?.id)).toEqual(Array(4).fill(exp.id));
    expect(linear.received.map((x) => x.event?.id)).toEqual(Array(4).fill(lin.id));
    // Lower bounds only (a busy machine may be slower, never faster): 40, 80, 160 ms vs 40, 80, 120 ms.
    for (const [i, gap] of gaps(exponential).entries()) expect(gap).toBeGreaterThanOrEqual([40, 80, 160][i]! - 2);
    for (const [i, gap] of gaps(linear).entries()) expect(gap).toBeGreaterThanOrEqual([40, 80, 120][i]! - 2);
    // Both end in the dead-letter sink once the retries are exhausted.
    expect(deadLetters.received.map((x) => x.event?.id).sort()).toEqual([exp.id, lin.id].sort());
  });

  it('sends an event whose retries are exhausted to the dead-letter sink with knativeerrordest/code/data', async () => {
    const [subscriber, deadLetters] = [await sink(), await sink()];
    const problem = JSON.stringify({ error: { code: 'dependency_unavailable', message: 'mongodb is unavailable' } });
    subscriber.respond = () => ({ status: 503, headers: { 'content-type': 'application/json' }, body: problem });
    const r = await router(deliveringTo(subscriber.url, `{ retry: 2, deadLetterSink: { uri: "${deadLetters.url}" } }`));
    const event = testEvent('io.kiot.test.down');
    await r.post(event);
    await r.idle();

    expect(subscriber.received).toHaveLength(3);
    expect(deadLetters.received).toHaveLength(1);
    const dead = deadLetters.received[0]!;
    expect(dead.headers).toMatchObject({
      'ce-id': event.id,
      'ce-type': 'io.kiot.test.down',
      'ce-knativeerrordest': subscriber.url,
      'ce-knativeerrorcode': '503',
    });
    expect(Buffer.from(dead.headers['ce-knativeerrordata']!, 'base64').toString()).toBe(problem);
    expect(dead.event?.data).toEqual({ n: 1 });
    expect(await r.deadLetters()).toEqual([]);
  });

  it('dead-letters a 400 at once, without retries, and truncates knativeerrordata to 1024 base64 characters', async () => {
    const [subscriber, deadLetters] = [await sink(), await sink()];
    subscriber.respond = () => ({ status: 400, body: 'x'.repeat(5_000) });
    const r = await router(
      deliveringTo(
        subscriber.url,
        `{ retry: 5, backoffPolicy: linear, backoffDelay: PT0.01S, deadLetterSink: { uri: "${deadLetters.url}" } }`,
      ),
    );
    await r.post(testEvent('io.kiot.test.invalid'));
    await r.idle();

    expect(subscriber.received).toHaveLength(1);
    expect(deadLetters.received[0]!.headers['ce-knativeerrorcode']).toBe('400');
    const data = deadLetters.received[0]!.headers['ce-knativeerrordata']!;
    expect(data).toHaveLength(1_024);
    expect(Buffer.from(data, 'base64').toString()).toBe('x'.repeat(768));
  });

  it('writes a dead-letter record to the file when the dead-letter sink fails', async () => {
    const [subscriber, deadLetters] = [await sink(), await sink()];
    subscriber.respond = () => ({ status: 422 });
    deadLetters.respond = () => ({ status: 500 });
    const r = await router(deliveringTo(subscriber.url, `{ retry: 1, deadLetterSink: { uri: "${deadLetters.url}" } }`));
    const event = testEvent('io.kiot.test.refused');
    await r.post(event);
    await r.idle();

    expect(deadLetters.received).toHaveLength(2);
    const [record] = await r.deadLetters();
    expect(record).toMatchObject({
      reason: 'dead_letter_sink_failed',
      broker: 'kiot/default',
      trigger: 'kiot/t',
      subscriber: subscriber.url,
      status: 422,
      error: expect.stringContaining('answered 500'),
      event: { id: event.id, knativeerrorcode: '422', knativeerrordest: subscriber.url, data: { n: 1 } },
    });
  });

  it('never drops: unreachable subscriber, missing or unmapped sink all end in the file', async () => {
    const closed = await startSinkServer();
    await closed.close();
    const r = await router({
      'a.yaml': trigger(
        'unreachable',
        `  filters: [{ exact: { type: io.kiot.test.a } }]\n  subscriber: { uri: "${closed.url}" }\n  ` +
          `delivery: { retry: 1, deadLetterSink: { uri: "${closed.url}" } }\n`,
      ),
      'b.yaml': trigger(
        'no-sink',
        `  filters: [{ exact: { type: io.kiot.test.b } }]\n  subscriber: { uri: "${closed.url}" }\n`,
      ),
      'c.yaml': trigger(
        'unmapped-sink',
        `  filters: [{ exact: { type: io.kiot.test.c } }]\n  subscriber: { uri: "${closed.url}" }\n  ` +
          `delivery: { deadLetterSink: { ref: { apiVersion: serving.knative.dev/v1, kind: Service, name: ` +
          `dead-letters } } }\n`,
      ),
      'd.yaml': trigger(
        'unmapped-subscriber',
        `  filters: [{ exact: { type: io.kiot.test.d } }]\n  subscriber: { ref: { apiVersion: v1, kind: Service, name: nobody } }\n`,
      ),
    });
    for (const type of ['a', 'b', 'c', 'd']) expect((await r.post(testEvent(`io.kiot.test.${type}`))).status).toBe(202);
    await waitUntil(async () => (await r.deadLetters()).length === 4);

    const byTrigger = Object.fromEntries((await r.deadLetters()).map((record) => [record.trigger, record]));
    expect(byTrigger['kiot/unreachable']).toMatchObject({
      reason: 'dead_letter_sink_failed',
      error: expect.stringContaining('dead-letter sink'),
      event: { knativeerrorcode: '500' },
    });
    expect(byTrigger['kiot/no-sink']).toMatchObject({
      reason: 'no_dead_letter_sink',
      event: { type: 'io.kiot.test.b' },
    });
    expect(byTrigger['kiot/unmapped-sink']).toMatchObject({
      reason: 'dead_letter_sink_unresolved',
      error: expect.stringContaining('dead-letters'),
    });
    expect(byTrigger['kiot/unmapped-subscriber']).toMatchObject({
      reason: 'subscriber_unresolved',
      error: expect.stringContaining('kiot/nobody'),
    });
    const metrics = await (await fetch(`${r.url}/metrics`)).text();
    expect(metrics).toContain('kiot_router_events_dead_lettered_total{trigger="kiot/no-sink",destination="file"} 1');
  });

  it('delivers concurrently: a slow subscriber does not hold up the others', async () => {
    const [slow, fast] = [await sink(), await sink()];
    slow.respond = () => ({ status: 202, delayMs: 30_000 });
    const r = await router({
      'slow.yaml': trigger(
        'slow',
        `  filters: [{ exact: { type: io.kiot.test.slow } }]\n  subscriber: { uri: "${slow.url}" }\n  delivery: { timeout: PT0.5S }\n`,
      ),
      'fast.yaml': trigger(
        'fast',
        `  filters: [{ exact: { type: io.kiot.test.fast } }]\n  subscriber: { uri: "${fast.url}" }\n`,
      ),
    });
    await r.post(testEvent('io.kiot.test.slow'));
    for (let i = 0; i < 5; i += 1) await r.post(testEvent('io.kiot.test.fast'));
    // All five fast deliveries finish while the slow one is still held open by its subscriber.
    await fast.waitFor((received) => received.length === 5);
    expect(slow.received).toHaveLength(0);
    // The slow one times out after PT0.5S (delivery.timeout) and, with no sink, lands in the file.
    await waitUntil(async () => (await r.deadLetters()).some((x) => x.trigger === 'kiot/slow'));
  });
});
