import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueName } from '../../support/services.js';
import { type SinkServer, startSinkServer } from '../../support/sink-server.js';
import { eventually, type Harness, startHarness } from './harness.js';

// Lazy expiry: no sweep timer and no tick (COMMAND_SWEEP_INTERVAL_MS 0, as on Knative), yet a command past its
// TTL or deadline is over as soon as anyone looks: a read, a list, an ack or a delivery attempt settles it and
// announces it, so command-dispatch needs no schedule to be right and can sit at zero.
describe('command-dispatch lazy expiry', () => {
  let sink: SinkServer;
  let h: Harness;

  beforeAll(async () => {
    sink = await startSinkServer();
    h = await startHarness({ sink: sink.url, env: { COMMAND_SWEEP_INTERVAL_MS: '0', COMMAND_QUEUE_CAP: '2' } });
  });
  afterAll(async () => {
    await h.close();
    await sink.close();
  });

  const eventsOf = (id: string) =>
    sink.received.filter((r) => (r.event?.data as { id?: string } | undefined)?.id === id).map((r) => r.event!.type);
  const passed = (iso: string) => eventually(async () => Date.now() > Date.parse(iso));

  it('a read finds a queued command past its TTL EXPIRED, announced once, and a list no longer shows it QUEUED', async () => {
    const id = uniqueName('dev');
    await h.registerDevice(id);
    const queued = (await h.request('POST', `/devices/${id}/commands`, { name: 'late', ttlSeconds: 1 })).body;
    expect(queued.status).toBe('QUEUED');
    await passed(queued.expiresAt);

    const listed = await h.request('GET', `/devices/${id}/commands?status=QUEUED`);
    expect(listed.body.items).toEqual([]);
    const read = await h.request('GET', `/commands/${queued.id}`);
    expect(read.body.status).toBe('EXPIRED');
    expect(read.body.history.map((e: { status: string }) => e.status)).toEqual(['QUEUED', 'EXPIRED']);
    await sink.waitFor(() => eventsOf(queued.id).includes('io.kiot.command.expired'));
    expect(eventsOf(queued.id).filter((t) => t === 'io.kiot.command.expired')).toHaveLength(1);
  });

  it('an expired command does not hold a place in the queue (the cap counts only live ones)', async () => {
    const id = uniqueName('dev');
    await h.registerDevice(id);
    const expiring = await h.request('POST', `/devices/${id}/commands`, { name: 'a', ttlSeconds: 1 });
    expect((await h.request('POST', `/devices/${id}/commands`, { name: 'b' })).status).toBe(202);
    await passed(expiring.body.expiresAt);
    // Cap 2: without lazy expiry the expired one would still count and this would be 429.
    expect((await h.request('POST', `/devices/${id}/commands`, { name: 'c' })).status).toBe(202);
  });

  it('a sent command past its deadline is TIMED_OUT when read, a late answer changes nothing, and the backlog moves on', async () => {
    const id = uniqueName('dev');
    await h.registerDevice(id);
    // Queued while offline: on connect they go out one at a time, the next after the device answers the first.
    const first = (await h.request('POST', `/devices/${id}/commands`, { name: 'first', timeoutSeconds: 1 })).body;
    const second = (await h.request('POST', `/devices/${id}/commands`, { name: 'second' })).body;
    expect([first.status, second.status]).toEqual(['QUEUED', 'QUEUED']);
    expect(await h.connected(id)).toBe(204);
    const sent = (await h.request('GET', `/commands/${first.id}`)).body;
    expect(sent.status).toBe('SENT');
    expect((await h.request('GET', `/commands/${second.id}`)).body.status).toBe('QUEUED');
    await passed(sent.deadlineAt);

    // The device never answered in time: the read settles it, and the second goes to the (online) device.
    const read = await h.request('GET', `/commands/${first.id}`);
    expect(read.body.status).toBe('TIMED_OUT');
    await sink.waitFor(() => eventsOf(first.id).includes('io.kiot.command.timed_out'));
    expect((await h.request('GET', `/commands/${second.id}`)).body.status).toBe('SENT');

    // An answer after the deadline changes nothing.
    expect(await h.ack(id, first.id, 'succeeded', { result: 1 })).toBe(204);
    const after = (await h.request('GET', `/commands/${first.id}`)).body;
    expect(after.status).toBe('TIMED_OUT');
    expect(after.result).toBeUndefined();
  });

  it('an answer that arrives after the deadline settles the command TIMED_OUT instead of SUCCEEDED', async () => {
    const id = await h.onlineDevice();
    const command = (await h.request('POST', `/devices/${id}/commands`, { name: 'slow', timeoutSeconds: 1 })).body;
    expect(command.status).toBe('SENT');
    await passed(command.deadlineAt);
    expect(await h.ack(id, command.id, 'succeeded', { result: 1 })).toBe(204);
    await sink.waitFor(() => eventsOf(command.id).includes('io.kiot.command.timed_out'));
    expect(eventsOf(command.id)).not.toContain('io.kiot.command.succeeded');
  });
});
