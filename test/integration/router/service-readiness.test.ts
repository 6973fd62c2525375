import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { DeadLetterRecord } from '../../../scripts/router/dead-letter-file.js';
import { type RunningRouter, routerConfigSchema, startRouter } from '../../../scripts/router/index.js';
import { CloudEvent, toBinaryMessage } from '../../../shared/cloudevents.js';
import { loadConfig } from '../../../shared/config.js';
import { createLogger } from '../../../shared/logger.js';
import { freePort } from '../../support/ports.js';
import { uniqueName } from '../../support/services.js';
import { type SinkServer, startSinkServer } from '../../support/sink-server.js';
import { BROKER, trigger, waitUntil } from './helpers.js';

// The router and a local Service that is not up yet, or dies: deliveries wait for its health check (as
// Knative's activator holds requests) instead of spending their few retries on a closed port and ending as
// dead letters. The Trigger allows 2 quick retries, so without the hold every event here would be dead-lettered.
const SUBSCRIBER = trigger(
  'to-fn',
  `  subscriber: { ref: { apiVersion: serving.knative.dev/v1, kind: Service, name: fn } }
  delivery: { retry: 2, backoffPolicy: linear, backoffDelay: PT0.05S }
`,
);

describe('local event router: deliveries wait for a Service that is starting or restarting', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  async function setup(options: { holdMs: number; manifests?: string }) {
    const root = await mkdtemp(join(tmpdir(), 'kiot-router-hold-'));
    cleanup.push(() => rm(root, { recursive: true, force: true }));
    await writeFile(join(root, 'broker.yaml'), BROKER);
    await writeFile(join(root, 'trigger.yaml'), options.manifests ?? SUBSCRIBER);
    const fnPort = await freePort();
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(`${warning.name}: ${warning.message}`);
    process.on('warning', onWarning);
    cleanup.push(async () => process.off('warning', onWarning));
    const start = async () => {
      const config = loadConfig(routerConfigSchema, {
        PORT: '0',
        KNATIVE_DIR: root,
        ROUTER_SERVICES: `fn=http://127.0.0.1:${fnPort}`,
        ROUTER_DEAD_LETTER_FILE: join(root, 'dead-letters.jsonl'),
        ROUTER_SERVICE_HOLD_MS: String(options.holdMs),
      });
      const router = await startRouter(config, { logger: createLogger('router-hold-test', 'silent') });
      cleanup.push(() => router.close({ drainTimeoutMs: 0 }));
      return router;
    };
    const startFn = async () => {
      const fn = await startSinkServer(fnPort);
      cleanup.push(() => fn.close());
      return fn;
    };
    const post = async (router: RunningRouter, id: string) => {
      const message = toBinaryMessage(
        new CloudEvent({ id, source: '/test/hold', type: 'io.kiot.test.hold', data: {} }),
      );
      return (
        await fetch(`${router.url}/kiot/default`, { method: 'POST', headers: message.headers, body: message.body })
      ).status;
    };
    const deadLetters = async (router: RunningRouter) =>
      ((await (await fetch(`${router.url}/dead-letters`)).json()) as { records: DeadLetterRecord[] }).records;
    const metric = async (router: RunningRouter, name: string) =>
      Number(
        new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)`, 'm').exec(
          await (await fetch(`${router.url}/metrics`)).text(),
        )?.[1] ?? 0,
      );
    const eventIds = (fn: SinkServer) => new Set(fn.received.flatMap((r) => (r.event ? [r.event.id] : [])));
    return { root, start, startFn, post, deadLetters, metric, eventIds, warnings };
  }

  it('holds what arrives before the Service is up, then delivers it all at the first try', async () => {
    const { start, startFn, post, deadLetters, metric, eventIds } = await setup({ holdMs: 60_000 });
    const router = await start();
    const ids = Array.from({ length: 20 }, (_, i) => `${uniqueName('early')}-${i}`);
    for (const id of ids) expect(await post(router, id)).toBe(202);
    await waitUntil(async () => (await metric(router, 'kiot_router_deliveries_held')) === ids.length);
    const fn = await startFn();
    await fn.waitFor(() => ids.every((id) => eventIds(fn).has(id)));
    await router.idle();
    expect(await deadLetters(router)).toEqual([]);
    expect(await metric(router, 'kiot_router_delivery_retries_total')).toBe(0);
  });

  it('without the hold the same events run out of retries into dead letters (what the hold prevents)', async () => {
    const { start, post, deadLetters } = await setup({ holdMs: 0 });
    const router = await start();
    const ids = Array.from({ length: 5 }, (_, i) => `${uniqueName('nohold')}-${i}`);
    for (const id of ids) expect(await post(router, id)).toBe(202);
    await router.idle();
    expect((await deadLetters(router)).map((record) => record.event.id).sort()).toEqual([...ids].sort());
  });

  it('after a refused connection (the Service died), holds again until it is back', async () => {
    const { start, startFn, post, deadLetters, metric, eventIds } = await setup({ holdMs: 60_000 });
    const router = await start();
    let fn = await startFn();
    const first = uniqueName('before');
    expect(await post(router, first)).toBe(202);
    await fn.waitFor(() => eventIds(fn).has(first));
    await fn.close();

    const ids = Array.from({ length: 20 }, (_, i) => `${uniqueName('while-down')}-${i}`);
    for (const id of ids) expect(await post(router, id)).toBe(202);
    // Each first attempt is refused; then they wait (instead of running out of their 2 retries).
    await waitUntil(async () => (await metric(router, 'kiot_router_deliveries_held')) === ids.length);
    fn = await startFn();
    await fn.waitFor(() => ids.every((id) => eventIds(fn).has(id)));
    await router.idle();
    expect(await deadLetters(router)).toEqual([]);
    expect(await metric(router, 'kiot_router_deliveries_held')).toBe(0);
  });

  it('a journal replayed at start waits for the Service too', async () => {
    const manifests = trigger(
      'patient',
      `  subscriber: { ref: { apiVersion: serving.knative.dev/v1, kind: Service, name: fn } }
  delivery: { retry: 1000, backoffPolicy: linear, backoffDelay: PT0.05S }
`,
    );
    const { start, startFn, post, deadLetters, metric, eventIds } = await setup({ holdMs: 60_000, manifests });
    let fn = await startFn();
    // Events are refused for now (retried); the health check answers.
    fn.respond = (request) => ({ status: request.event ? 503 : 200 });
    let router = await start();
    const ids = Array.from({ length: 10 }, (_, i) => `${uniqueName('journaled')}-${i}`);
    for (const id of ids) expect(await post(router, id)).toBe(202);
    await fn.waitFor((received) => received.filter((r) => r.event).length >= ids.length);
    await router.close({ drainTimeoutMs: 0 });
    await fn.close();

    router = await start();
    expect(await metric(router, 'kiot_router_events_replayed_total')).toBe(ids.length);
    await waitUntil(async () => (await metric(router, 'kiot_router_deliveries_held')) === ids.length);
    fn = await startFn();
    await fn.waitFor(() => ids.every((id) => eventIds(fn).has(id)));
    await waitUntil(async () => (await metric(router, 'kiot_router_journal_pending_events')) === 0);
    expect(await deadLetters(router)).toEqual([]);
  });

  it('many deliveries waiting out a backoff at once raise no MaxListenersExceededWarning', async () => {
    const manifests = trigger(
      'slow-retries',
      `  subscriber: { ref: { apiVersion: serving.knative.dev/v1, kind: Service, name: fn } }
  delivery: { retry: 3, backoffPolicy: linear, backoffDelay: PT0.3S }
`,
    );
    const { start, startFn, post, metric, eventIds, warnings } = await setup({ holdMs: 0, manifests });
    const fn = await startFn();
    const tried = new Set<string>();
    // Every event is refused once (503), so all of them wait out a backoff at the same time.
    fn.respond = (request) => {
      const id = request.event?.id;
      if (!id || tried.has(id)) return { status: 202 };
      tried.add(id);
      return { status: 503 };
    };
    const router = await start();
    const ids = Array.from({ length: 40 }, (_, i) => `${uniqueName('backoff')}-${i}`);
    await Promise.all(ids.map(async (id) => expect(await post(router, id)).toBe(202)));
    await router.idle();
    expect(ids.every((id) => eventIds(fn).has(id))).toBe(true);
    expect(await metric(router, 'kiot_router_delivery_retries_total')).toBeGreaterThanOrEqual(ids.length);
    expect(warnings.filter((warning) => warning.startsWith('MaxListenersExceededWarning'))).toEqual([]);
  });
});
