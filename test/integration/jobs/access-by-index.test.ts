import type { CommandStartedEvent } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MONGODB_URL } from '../../support/services.js';
import { type JobsHarness, jobBody, startJobsHarness } from './harness.js';

// What a rollout does per execution names its executions by a unique index: mongo-java-server (the test and
// development server) answers only a filter whose fields are exactly a unique index's, by equality or `$in`, and
// scans job_executions for any other (execution-repository.ts; bench:jobs in docs/performance.md). The commands
// jobs sends are watched with the driver's command monitoring, so this holds on any server.
let h: JobsHarness;
const commands: { name: string; filters: Record<string, unknown>[] }[] = [];

/** The filters a command applies to job_executions (find, findAndModify, update, delete, aggregate's $match). */
function filtersOf(event: CommandStartedEvent): Record<string, unknown>[] | undefined {
  const command = event.command as Record<string, any>;
  if (command[event.commandName] !== 'job_executions') return undefined;
  switch (event.commandName) {
    case 'find':
    case 'count':
      return [command.filter ?? command.query ?? {}];
    case 'findAndModify':
      return [command.query ?? {}];
    case 'update':
    case 'delete':
      return (command.updates ?? command.deletes).map((statement: { q: Record<string, unknown> }) => statement.q);
    case 'aggregate':
      return [command.pipeline[0]?.$match ?? {}];
    default:
      return [];
  }
}

/** Whether a unique index answers the filter: `_id`, `slot` (equality or `$in`), or exactly `{_id, versionNumber}`. */
function byUniqueIndex(filter: Record<string, unknown>): boolean {
  const keys = Object.keys(filter).sort().join(',');
  const plain = (value: unknown) =>
    typeof value !== 'object' || value === null || Object.keys(value).every((key) => key === '$in');
  if (keys === '_id' || keys === 'slot') return plain(Object.values(filter)[0]);
  return keys === '_id,versionNumber' && typeof filter._id === 'string' && typeof filter.versionNumber === 'number';
}

const scansSince = (from: number) =>
  commands
    .slice(from)
    .flatMap((command) => command.filters.map((filter) => ({ name: command.name, filter })))
    .filter(({ filter }) => !byUniqueIndex(filter));

beforeAll(async () => {
  const url = `${MONGODB_URL}${MONGODB_URL.includes('?') ? '&' : '?'}monitorCommands=true`;
  h = await startJobsHarness({ env: { MONGODB_URL: url } });
  const client = (await h.instances[0]!.runtime.mongo.db()).client;
  client.on('commandStarted', (event: CommandStartedEvent) => {
    const filters = filtersOf(event);
    if (filters) commands.push({ name: event.commandName, filters });
  });
});
afterAll(async () => {
  await h?.close();
});

describe('a rollout names executions by a unique index', () => {
  it('a release wave scans a bounded number of times, and device requests never', async () => {
    const devices = Array.from({ length: 40 }, (_, i) => h.id(`d${i}`));
    await h.addDevices(devices.map((id) => ({ id, tags: [h.id('fleet')] })));
    const jobId = h.id('wave');
    expect((await h.request('POST', '/jobs', jobBody(jobId, { tags: [h.id('fleet')] }))).status).toBe(201);

    // The pass that releases the wave and notifies its 40 devices: its own upkeep (the recount, the timeout sweep)
    // may scan, once each per pass, whatever the size of the wave.
    let mark = commands.length;
    await h.pass();
    await h.waitFor(devices[39]!, '/jobs/notify-next');
    expect(scansSince(mark).length).toBeLessThanOrEqual(3);
    expect(commands.length - mark).toBeLessThan(20);

    // Each device's requests: start-next, a progress update, the final update, a describe, a get.
    mark = commands.length;
    for (const [i, device] of devices.entries()) {
      expect(await h.deviceRequest(device, 'start-next', {})).toBe(204);
      const started = await h.waitFor(device, '/jobs/start-next/accepted');
      const version = started.payload.execution.versionNumber as number;
      expect(await h.deviceRequest(device, 'update', { status: 'IN_PROGRESS', expectedVersion: version }, jobId)).toBe(
        204,
      );
      expect(
        await h.deviceRequest(
          device,
          'update',
          { status: i % 10 === 0 ? 'FAILED' : 'SUCCEEDED', expectedVersion: version + 1 },
          jobId,
        ),
      ).toBe(204);
      expect(await h.deviceRequest(device, 'describe', {}, jobId)).toBe(204);
      expect(await h.deviceRequest(device, 'get', {})).toBe(204);
    }
    expect(commands.length - mark).toBeGreaterThan(devices.length * 5); // the monitor sees them
    expect(scansSince(mark)).toEqual([]);

    // The pass that sees every execution ended completes the job (`anyActive` asks once, then the cleanup counts).
    mark = commands.length;
    await h.pass();
    expect((await h.request('GET', `/jobs/${jobId}`)).body.status).toBe('COMPLETED');
    expect(scansSince(mark).length).toBeLessThanOrEqual(4);
  });

  it('executions that outlive their job are counted down, and the job drained with one question at the end', async () => {
    const devices = Array.from({ length: 10 }, (_, i) => h.id(`late${i}`));
    await h.addDevices(devices.map((id) => ({ id, tags: [h.id('late')] })));
    const jobId = h.id('outlived');
    expect((await h.request('POST', '/jobs', jobBody(jobId, { tags: [h.id('late')] }))).status).toBe(201);
    await h.pass();
    const versions = new Map<string, number>();
    for (const device of devices) {
      expect(await h.deviceRequest(device, 'start-next', {})).toBe(204);
      versions.set(device, (await h.waitFor(device, '/jobs/start-next/accepted')).payload.execution.versionNumber);
    }
    // A cancel without force: the IN_PROGRESS executions may finish.
    expect((await h.request('POST', `/jobs/${jobId}/cancel`, {})).status).toBe(200);
    const jobs = (await h.mongo.db()).collection<{ _id: string; drained?: boolean; activeLeft?: number }>('jobs');
    expect(await jobs.findOne({ _id: jobId })).toMatchObject({ activeLeft: 10 });

    const mark = commands.length;
    for (const device of devices) {
      const expectedVersion = versions.get(device)!;
      expect(await h.deviceRequest(device, 'update', { status: 'SUCCEEDED', expectedVersion }, jobId)).toBe(204);
      expect((await jobs.findOne({ _id: jobId }))?.drained === true).toBe(device === devices.at(-1));
    }
    // The executions were asked once, when the last one ended.
    expect(scansSince(mark).length).toBe(1);
  });
});
