import type { CommandStartedEvent } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, startHarness } from './harness.js';
import { quarter, random, type SampleDoc, storeDevices, storeSamples } from './telemetry-fixtures.js';

const HOUR = 3_600_000;
const DAY = 86_400_000;
const START = Date.UTC(2025, 0, 1);
const END = START + 365 * DAY;

/** The collection a command works on (`find: 'telemetry'`, `aggregate: 'telemetry'`, …). */
const target = (event: CommandStartedEvent) => String(event.command[event.commandName] ?? '');

describe('a year-long report', { timeout: 120_000 }, () => {
  let h: Harness;
  let stored: SampleDoc[] = [];
  const commands: CommandStartedEvent[] = [];

  beforeAll(async () => {
    // The driver's command monitoring sees every command this function sends to the server.
    h = await startHarness('rg-year', { mongoOptions: { monitorCommands: true } });
    (await h.mongo.db()).client.on('commandStarted', (event) => commands.push(event));
    await storeDevices(h.mongo, [{ id: 'yr-1' }, { id: 'yr-2' }]);
    const rand = random(2025);
    const docs: SampleDoc[] = [];
    for (const deviceId of ['yr-1', 'yr-2']) {
      for (let ts = START; ts < END; ts += HOUR) {
        if (rand() < 0.1) continue;
        docs.push({
          _id: `${deviceId}~${ts}`,
          deviceId,
          ts: new Date(ts),
          metrics: { temp: quarter(rand, -20, 35) },
          eventId: `e${ts}`,
          receivedAt: h.now(),
        });
      }
    }
    stored = await storeSamples(h.mongo, docs, h.now());
    expect((await h.request('POST', '/rollups/run')).status).toBe(200);
  }, 120_000);
  afterAll(async () => h?.close());

  async function reportWithoutRawReads(body: Record<string, unknown>) {
    commands.length = 0;
    const response = await h.request('POST', '/reports', body);
    expect(response.status, await response.clone().text()).toBe(201);
    const report = (await response.json()) as {
      id: string;
      interval: string;
      sources: string[];
      summary: { metrics: Record<string, { count: number; min: number; max: number }> };
    };
    const json = await h.request('GET', `/reports/${report.id}`);
    expect(json.status).toBe(200);
    const csv = await h.request('GET', `/reports/${report.id}?format=csv`);
    expect(csv.status).toBe(200);
    await csv.text();
    expect(commands.length).toBeGreaterThan(0);
    expect(commands.filter((e) => target(e) === 'telemetry').map((e) => `${e.commandName} ${target(e)}`)).toEqual([]);
    expect(commands.some((e) => e.commandName === 'find' && target(e) === 'rollups')).toBe(true);
    return report;
  }

  it('is served from daily rollups: no command touches the raw telemetry collection', async () => {
    const report = await reportWithoutRawReads({
      scope: { deviceIds: ['yr-1', 'yr-2'] },
      from: new Date(START).toISOString(),
      to: new Date(END).toISOString(),
      metrics: ['temp'],
    });
    expect(report.interval).toBe('1d');
    expect(report.sources).toEqual(['day']);
    const temps = stored.map((d) => d.metrics.temp!);
    expect(report.summary.metrics.temp).toMatchObject({
      count: temps.length,
      min: Math.min(...temps),
      max: Math.max(...temps),
    });
  });

  it('at hourly resolution reads hourly rollups, still without a raw read', async () => {
    const report = await reportWithoutRawReads({
      scope: { deviceIds: ['yr-1'] },
      from: new Date(START).toISOString(),
      to: new Date(END).toISOString(),
      metrics: ['temp'],
      interval: '1h',
    });
    expect(report.sources).toEqual(['hour']);
    expect(report.summary.metrics.temp!.count).toBe(stored.filter((d) => d.deviceId === 'yr-1').length);
  });
});
