import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SWEEP_PENDING_WORK } from '../../../functions/command-dispatch/sweep.js';
import { ROLLUPS_PENDING_WORK } from '../../../functions/report-generation/run-rollups.js';
import { CloudEvent, toBinaryMessage } from '../../../shared/cloudevents.js';
import { createMongo, type MongoHandle } from '../../../shared/mongo.js';
import type { PendingWork } from '../../../shared/pending-work.js';
import { freePort, waitForPort } from '../../support/ports.js';
import { MONGODB_URL, uniqueName } from '../../support/services.js';
import { type SinkServer, startSinkServer } from '../../support/sink-server.js';
import { buildBundles } from '../../unit/knative/lib/build.js';
import { ROOT } from '../../unit/knative/lib/manifests.js';

// The tick gate as it runs (node dist/tick-gate.js) against the real MongoDB-compatible server: a PingSource
// tick goes on to the Broker (here a sink) only when its task's pending-work queries find a document.
describe('tick gate', () => {
  const db = uniqueName('gate')
    .replace(/[^A-Za-z0-9_-]/g, '_')
    .slice(0, 60);
  let sink: SinkServer;
  let mongo: MongoHandle;
  const gates: ChildProcess[] = [];

  async function startGate(mongoUrl = MONGODB_URL): Promise<string> {
    const port = await freePort();
    const child = spawn('node', [join(ROOT, 'dist', 'tick-gate.js')], {
      env: {
        PATH: process.env.PATH,
        PORT: String(port),
        MONGODB_URL: mongoUrl,
        MONGODB_DB: db,
        K_SINK: sink.url,
        LOG_LEVEL: 'warn',
        TICK_GATE_COLLECTIONS: 'commands,telemetry,rollup_marks',
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    gates.push(child);
    await waitForPort(port, child);
    return `http://127.0.0.1:${port}/`;
  }

  /** A tick as a PingSource sends it (binary mode), with the task's pending work in its data. */
  async function tick(gate: string, task: string, pending: PendingWork | unknown) {
    const event = new CloudEvent<unknown>({
      id: randomUUID(),
      source: `/apis/v1/namespaces/kiot/pingsources/${task}`,
      type: 'dev.knative.sources.ping',
      datacontenttype: 'application/json',
      data: { task, pending },
      kiottask: task.replace(/-/g, ''),
    });
    const message = toBinaryMessage(event);
    const response = await fetch(gate, { method: 'POST', headers: message.headers, body: message.body as string });
    return { id: event.id, status: response.status, body: await response.text() };
  }
  const forwarded = (id: string) => sink.received.filter((r) => r.event?.id === id);

  beforeAll(async () => {
    buildBundles();
    sink = await startSinkServer();
    mongo = createMongo(MONGODB_URL, db);
  }, 120_000);
  afterAll(async () => {
    for (const gate of gates) gate.kill('SIGKILL');
    await (await mongo.db()).dropDatabase().catch(() => undefined);
    await mongo.close();
    await sink.close();
  });

  it('stops the tick while nothing is due and passes the same event on once a command is overdue', async () => {
    const gate = await startGate();
    const idle = await tick(gate, 'command-sweep', SWEEP_PENDING_WORK);
    expect(idle.status).toBe(204);
    const commands = (await mongo.db()).collection('commands');
    // Open, but not yet due: still nothing to do.
    await commands.insertOne({ _id: 'c1' as never, status: 'QUEUED', expiresAt: new Date(Date.now() + 3_600_000) });
    const early = await tick(gate, 'command-sweep', SWEEP_PENDING_WORK);
    expect(early.status).toBe(204);
    expect(forwarded(idle.id)).toHaveLength(0);
    expect(forwarded(early.id)).toHaveLength(0);

    await commands.insertOne({
      _id: 'c2' as never,
      status: 'SENT',
      expiresAt: new Date(Date.now() + 3_600_000),
      deadlineAt: new Date(Date.now() - 1_000),
    });
    const due = await tick(gate, 'command-sweep', SWEEP_PENDING_WORK);
    expect(due.status).toBe(204);
    const [passed] = forwarded(due.id);
    expect(passed?.event).toMatchObject({
      type: 'dev.knative.sources.ping',
      source: '/apis/v1/namespaces/kiot/pingsources/command-sweep',
      kiottask: 'commandsweep',
      data: { task: 'command-sweep' },
    });
    expect((passed!.event!.data as Record<string, unknown>).pending).toBeUndefined();
  });

  it('wakes rollups for samples ingested since the watermark less the ingest lateness, not for older ones', async () => {
    const gate = await startGate();
    const database = await mongo.db();
    // Never ran: no watermark, due.
    const first = await tick(gate, 'rollups', ROLLUPS_PENDING_WORK);
    expect(forwarded(first.id)).toHaveLength(1);
    const now = Date.now();
    await database.collection('rollup_marks').insertOne({ _id: 'watermark' as never, since: new Date(now) });
    await database
      .collection('telemetry')
      .insertOne({ deviceId: 'd', ts: new Date(now - 600_000), ingestedAt: new Date(now - 600_000) });
    const quiet = await tick(gate, 'rollups', ROLLUPS_PENDING_WORK);
    expect(forwarded(quiet.id)).toHaveLength(0);
    await database
      .collection('telemetry')
      .insertOne({ deviceId: 'd', ts: new Date(now), ingestedAt: new Date(now - 60_000) });
    const busy = await tick(gate, 'rollups', ROLLUPS_PENDING_WORK);
    expect(forwarded(busy.id)).toHaveLength(1);
  });

  it('refuses a query on a collection it may not read (422), and passes ticks on unchecked while MongoDB is down', async () => {
    const gate = await startGate();
    const refused = await tick(gate, 'secrets', [{ collection: 'api_keys', match: { id: 'x' } }]);
    expect(refused.status).toBe(422);
    expect(forwarded(refused.id)).toHaveLength(0);
    const malformed = await tick(gate, 'evil', [{ collection: 'commands', match: { $where: 'sleep(1)' } }]);
    expect(malformed.status).toBe(400);

    const closed = await freePort();
    const blind = await startGate(`mongodb://127.0.0.1:${closed}`);
    const unchecked = await tick(blind, 'command-sweep', SWEEP_PENDING_WORK);
    expect(unchecked.status).toBe(204);
    expect(forwarded(unchecked.id)).toHaveLength(1);
  });
});
