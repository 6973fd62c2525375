import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CloudEvent, toBinaryMessage } from '../../../shared/cloudevents.js';
import { freePort, waitForPort } from '../../support/ports.js';
import { uniqueName } from '../../support/services.js';
import { type SinkServer, startSinkServer } from '../../support/sink-server.js';
import { BROKER, trigger, waitUntil } from './helpers.js';

// The router's journal under kill -9 of the router alone: dist/router.js in a child process takes events
// from concurrent posters, is killed without warning while they are in flight, and is started again on
// the same data folder. Whatever it answered 202 must reach the subscriber.
describe('local event router: the journal across kill -9 and restarts', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  async function setup() {
    const root = await mkdtemp(join(tmpdir(), 'kiot-router-crash-'));
    cleanup.push(() => rm(root, { recursive: true, force: true }));
    const sink = await startSinkServer();
    cleanup.push(() => sink.close());
    await mkdir(join(root, 'knative'));
    await writeFile(join(root, 'knative', 'broker.yaml'), BROKER);
    await writeFile(
      join(root, 'knative', 'trigger.yaml'),
      trigger(
        't',
        `  subscriber: { uri: "${sink.url}" }\n  delivery: { retry: 1000, backoffPolicy: linear, backoffDelay: PT0.05S }\n`,
      ),
    );
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    let log = '';
    const start = async (): Promise<ChildProcess> => {
      const child = spawn(process.execPath, ['dist/router.js'], {
        env: {
          ...process.env,
          PORT: String(port),
          KNATIVE_DIR: join(root, 'knative'),
          ROUTER_DEAD_LETTER_FILE: join(root, 'data', 'dead-letters.jsonl'),
          LOG_LEVEL: 'info',
          // Deliveries still retrying at a SIGTERM wait this long before they are left to the journal.
          ROUTER_DRAIN_TIMEOUT_MS: '200',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout?.on('data', (chunk: Buffer) => (log += chunk.toString()));
      child.stderr?.on('data', (chunk: Buffer) => (log += chunk.toString()));
      cleanup.push(async () => child.kill('SIGKILL'));
      await waitForPort(port, child, { describe: () => log.slice(-2_000) });
      return child;
    };
    const exited = (child: ChildProcess) =>
      child.exitCode !== null || child.signalCode !== null
        ? Promise.resolve()
        : new Promise((resolve) => child.once('exit', resolve));
    const post = async (id: string) => {
      const message = toBinaryMessage(
        new CloudEvent({ id, source: '/test/crash', type: 'io.kiot.test.crash', data: { id } }),
      );
      const response = await fetch(`${url}/kiot/default`, {
        method: 'POST',
        headers: message.headers,
        body: message.body,
      });
      return response.status;
    };
    const metric = async (name: string) =>
      Number(new RegExp(`^${name} (\\d+)`, 'm').exec(await (await fetch(`${url}/metrics`)).text())?.[1]);
    const deliveredIds = (server: SinkServer) =>
      new Set(server.received.filter((r) => r.event).map((r) => r.event!.id));
    return { url, sink, start, exited, post, metric, deliveredIds, log: () => log };
  }

  it('delivers every event it answered 202 before a kill -9 at a random moment, after the restart', async () => {
    const { sink, start, exited, post, deliveredIds } = await setup();
    // Half the events are refused for now (503: retried), so the kill finds deliveries in every state.
    sink.respond = (request) => ({ status: Number(request.event?.id.split('-').at(-1)) % 2 === 0 ? 202 : 503 });
    let router = await start();
    const run = uniqueName('crash');
    const total = 600;
    const killAfter = 100 + Math.floor(Math.random() * 300);
    const acknowledged = new Set<string>();
    let next = 0;
    let killed = false;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < total && !killed) {
          const id = `${run}-${next++}`;
          const status = await post(id).catch(() => 0);
          if (status === 202) acknowledged.add(id);
          if (acknowledged.size >= killAfter && !killed) {
            killed = true;
            router.kill('SIGKILL');
          }
        }
      }),
    );
    await exited(router);
    expect(acknowledged.size).toBeGreaterThanOrEqual(killAfter);

    sink.respond = () => ({ status: 202 });
    router = await start();
    await sink.waitFor(() => [...acknowledged].every((id) => deliveredIds(sink).has(id)), 60_000);
    // Nothing was invented: every delivery is of an event that was posted.
    for (const id of deliveredIds(sink)) expect(Number(id.split('-').at(-1))).toBeLessThan(next);
  });

  it('leaves unfinished deliveries in the journal on a clean stop, delivers them at the next start, then replays nothing', async () => {
    const { sink, start, exited, post, metric, deliveredIds, log } = await setup();
    sink.respond = () => ({ status: 503 });
    let router = await start();
    const ids = Array.from({ length: 20 }, (_, i) => `${uniqueName('stop')}-${i}`);
    for (const id of ids) expect(await post(id)).toBe(202);
    await sink.waitFor((received) => received.length >= ids.length);
    router.kill('SIGTERM');
    await exited(router);
    expect(log()).not.toContain('router_shutdown');

    sink.respond = () => ({ status: 202 });
    router = await start();
    expect(await metric('kiot_router_events_replayed_total')).toBe(ids.length);
    await sink.waitFor(() => ids.every((id) => deliveredIds(sink).has(id)));
    await waitUntil(async () => (await metric('kiot_router_journal_pending_events')) === 0);
    router.kill('SIGTERM');
    await exited(router);

    router = await start();
    expect(await metric('kiot_router_events_replayed_total')).toBe(0);
    expect(await metric('kiot_router_journal_pending_events')).toBe(0);
  });

  it('keeps every dead-letter record it acknowledged across a kill -9 (POST /dead-letters)', async () => {
    const { url, start, exited } = await setup();
    let router = await start();
    const run = uniqueName('dl');
    const acknowledged = new Set<string>();
    const killAfter = 50 + Math.floor(Math.random() * 100);
    let next = 0;
    let killed = false;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < 400 && !killed) {
          const id = `${run}-${next++}`;
          const message = toBinaryMessage(
            new CloudEvent({ id, source: '/test/dl', type: 'io.kiot.test.dl', data: {} }),
          );
          const status = await fetch(`${url}/dead-letters`, {
            method: 'POST',
            headers: message.headers,
            body: message.body,
          })
            .then((response) => response.status)
            .catch(() => 0);
          if (status === 202) acknowledged.add(id);
          if (acknowledged.size >= killAfter && !killed) {
            killed = true;
            router.kill('SIGKILL');
          }
        }
      }),
    );
    await exited(router);
    router = await start();
    const { records } = (await (await fetch(`${url}/dead-letters`)).json()) as { records: { event: { id: string } }[] };
    const kept = new Set(records.map((record) => record.event.id));
    expect([...acknowledged].filter((id) => !kept.has(id))).toEqual([]);
  });
});
