import { describe, expect, it } from 'vitest';
import { isTerminal, parseJson, parseObject, statusTone } from '../../../console/web/logic/commands.js';
import {
  CursorTrail,
  filtersFrom,
  parseTags,
  passesClientFilters,
  registryQuery,
  searchOf,
} from '../../../console/web/logic/devices-query.js';
import {
  formatAgo,
  formatCount,
  formatDuration,
  formatPercent,
  formatTime,
} from '../../../console/web/logic/format.js';
import { fleetShares, overviewFigures, sharesOf, typeRows } from '../../../console/web/logic/overview.js';
import { allows, isReadOnly, permissionsOf } from '../../../console/web/logic/scopes.js';
import { HISTORY_POINTS, historyColumns, LiveWindow, rangeOf, seriesQuery } from '../../../console/web/logic/series.js';

describe('console: what a key may do', () => {
  it('reads scopes as the functions do: exact, resource:*, *', () => {
    expect(allows(['devices:read'], 'devices:read')).toBe(true);
    expect(allows(['devices:read'], 'devices:write')).toBe(false);
    expect(allows(['devices:*'], 'devices:write')).toBe(true);
    expect(allows(['*'], 'deadletters:write')).toBe(true);
    expect(allows(['telemetry:*'], 'devices:read')).toBe(false);
  });

  it('calls a key with read scopes only read-only, and one write scope enough to change something', () => {
    const reader = ['devices:read', 'telemetry:read', 'commands:read', 'reports:read', 'jobs:read', 'deadletters:read'];
    expect(isReadOnly(reader)).toBe(true);
    expect(permissionsOf(reader)).toMatchObject({ devicesRead: true, devicesWrite: false, commandsWrite: false });
    expect(isReadOnly([...reader, 'commands:write'])).toBe(false);
    expect(isReadOnly(['*'])).toBe(false);
  });
});

describe('console: the overview pictures', () => {
  it('splits a whole in whole percentages that add up to exactly 100', () => {
    const thirds = sharesOf([
      { key: 'a', label: 'a', count: 1 },
      { key: 'b', label: 'b', count: 1 },
      { key: 'c', label: 'c', count: 1 },
    ]);
    expect(thirds.map((s) => s.percent)).toEqual([34, 33, 33]);
    const uneven = sharesOf([
      { key: 'a', label: 'a', count: 995 },
      { key: 'b', label: 'b', count: 4 },
      { key: 'c', label: 'c', count: 1 },
    ]);
    // 0.1 % stays visible as 1 %, taken from the largest part.
    expect(uneven.map((s) => s.percent)).toEqual([98, 1, 1]);
    expect(uneven.reduce((sum, s) => sum + s.percent, 0)).toBe(100);
    expect(sharesOf([{ key: 'a', label: 'a', count: 0 }]).map((s) => s.percent)).toEqual([0]);
    for (let n = 1; n < 40; n++) {
      const parts = [n, 2 * n + 1, 7, n % 3].map((count, i) => ({ key: String(i), label: String(i), count }));
      expect(
        sharesOf(parts).reduce((sum, s) => sum + s.percent, 0),
        `n=${n}`,
      ).toBe(100);
    }
  });

  it('draws the fleet as online, offline and disabled, only once all three are known', () => {
    expect(fleetShares({ online: 6, offline: 2, disabled: 0, total: 8 })).toEqual([
      { key: 'online', label: 'online', count: 6, percent: 75 },
      { key: 'offline', label: 'offline', count: 2, percent: 25 },
      { key: 'disabled', label: 'disabled', count: 0, percent: 0 },
    ]);
    expect(fleetShares({ total: 8, disabled: 0 })).toBeUndefined();
  });

  it('lists devices per type, most first, as a share of the largest type', () => {
    expect(
      typeRows([
        { type: 'meter', devices: 5 },
        { type: null, devices: 1 },
        { type: 'sensor', devices: 20 },
      ]),
    ).toEqual([
      { type: 'sensor', label: 'sensor', devices: 20, percentOfLargest: 100 },
      { type: 'meter', label: 'meter', devices: 5, percentOfLargest: 25 },
      { type: null, label: 'no type', devices: 1, percentOfLargest: 5 },
    ]);
    expect(
      typeRows(
        [
          { type: 'a', devices: 1 },
          { type: 'b', devices: 1 },
        ],
        1,
      ),
    ).toHaveLength(1);
  });
});

describe('console: the overview figures', () => {
  it('counts offline as active devices that are not online, and leaves out what it could not read', () => {
    expect(
      overviewFigures({
        devices: { total: 10, byStatus: { active: 8, disabled: 2 } },
        telemetry: { online: 5, messagesPerSecond: 12.5, openAlerts: 1 },
        jobs: { items: [{ status: 'IN_PROGRESS' }, { status: 'SCHEDULED' }, { status: 'COMPLETED' }] },
        deadLetters: { pending: 4, failingDevices: [{ deviceId: 'a' }, { deviceId: 'b' }] },
        commands: { inFlight: 3 },
      }),
    ).toEqual({
      total: 10,
      disabled: 2,
      online: 5,
      offline: 3,
      messagesPerSecond: 12.5,
      openAlerts: 1,
      jobsInFlight: 2,
      deadLettersWaiting: 4,
      failingDevices: 2,
      commandsInFlight: 3,
    });
    // A key without telemetry:read: no online, so no offline either (never a wrong number).
    expect(overviewFigures({ devices: { total: 3, byStatus: { active: 3, disabled: 0 } } })).toEqual({
      total: 3,
      disabled: 0,
    });
    // More online than active (a device disabled a moment ago): offline is never negative.
    expect(
      overviewFigures({
        devices: { total: 2, byStatus: { active: 1, disabled: 1 } },
        telemetry: { online: 2, messagesPerSecond: 0, openAlerts: 0 },
      }).offline,
    ).toBe(0);
  });
});

describe('console: the live window of a device chart', () => {
  const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
  const now = Date.UTC(2026, 0, 1, 0, 1, 0);

  it('keeps samples in time order, each time once, whatever order they arrive in', () => {
    const live = new LiveWindow(60_000);
    expect(
      live.add(
        [
          { ts: at(10), metrics: { t: 1 } },
          { ts: at(30), metrics: { t: 3 } },
        ],
        now,
      ),
    ).toBe(2);
    // A sample read from the API and heard live is the same sample; an older one slots in.
    expect(
      live.add(
        [
          { ts: at(30), metrics: { t: 3, rh: 40 } },
          { ts: at(20), metrics: { t: 2 } },
        ],
        now,
      ),
    ).toBe(1);
    expect(live.columns('t')).toEqual([[at(10), at(20), at(30)].map((t) => Date.parse(t) / 1000), [1, 2, 3]]);
    expect(live.columns('rh')[1]).toEqual([null, null, 40]);
    expect(live.metrics).toEqual(['rh', 't']);
    expect(live.latest('t')).toEqual({ at: Date.parse(at(30)), value: 3 });
    expect(live.newest).toBe(Date.parse(at(30)));
  });

  it('drops what falls out of the window and refuses what is already out', () => {
    const live = new LiveWindow(30_000);
    live.add(
      [
        { ts: at(20), metrics: { t: 1 } },
        { ts: at(40), metrics: { t: 2 } },
      ],
      now,
    );
    expect(live.size).toBe(1);
    live.trim(now + 30_000);
    expect(live.size).toBe(0);
    expect(live.add([{ ts: 'not a time', metrics: { t: 1 } }], now)).toBe(0);
  });

  it('asks the downsampled series API for a range ending now, with a point budget', () => {
    const query = new URLSearchParams(seriesQuery('temp', 7 * 86_400_000, now));
    expect(Object.fromEntries(query)).toEqual({
      metric: 'temp',
      from: new Date(now - 7 * 86_400_000).toISOString(),
      to: new Date(now).toISOString(),
      points: String(HISTORY_POINTS),
    });
    expect(rangeOf('7d').ms).toBe(7 * 86_400_000);
    expect(rangeOf('nonsense').id).toBe('live');
    expect(historyColumns([{ t: at(0), avg: 2, min: 1, max: 3 }])).toEqual([[Date.parse(at(0)) / 1000], [2], [1], [3]]);
  });
});

describe('console: the devices list', () => {
  it('keeps its filters in the URL and asks the registry for what it can filter', () => {
    const filters = filtersFrom('?q=sim-&tag=lab&status=online&bogus=1');
    expect(filters).toEqual({ q: 'sim-', tag: 'lab', type: '', status: 'online' });
    expect(searchOf(filters)).toBe('?q=sim-&tag=lab&status=online');
    expect(searchOf(filtersFrom(''))).toBe('');
    expect(filtersFrom('?status=everything').status).toBe('');
    expect(new URLSearchParams(registryQuery(filters, 50, 'abc')).toString()).toBe(
      'limit=50&idPrefix=sim-&tag=lab&cursor=abc',
    );
    expect(registryQuery({ ...filters, status: 'disabled' }, 10)).toContain('status=disabled');
  });

  it('filters by presence what the registry cannot', () => {
    const device = { id: 'sim-1', tags: ['lab'], type: 'sensor' };
    const filters = filtersFrom('?status=offline');
    expect(passesClientFilters(device, 'online', filters)).toBe(false);
    expect(passesClientFilters(device, 'unknown', filters)).toBe(true);
    expect(passesClientFilters(device, undefined, filtersFrom('?type=pump'))).toBe(false);
    expect(passesClientFilters(device, 'online', filtersFrom('?q=sim-&tag=lab&status=online'))).toBe(true);
  });

  it('goes back and forth through cursor pages', () => {
    const trail = new CursorTrail();
    expect([trail.page, trail.current, trail.canGoBack]).toEqual([1, undefined, false]);
    trail.forward('c2');
    trail.forward('c3');
    expect([trail.page, trail.current]).toEqual([3, 'c3']);
    trail.back();
    expect(trail.current).toBe('c2');
    trail.reset();
    expect(trail.page).toBe(1);
  });

  it('reads tags as typed', () => {
    expect(parseTags(' lab, roof  lab,,b ')).toEqual(['lab', 'roof', 'b']);
  });
});

describe('console: statuses, JSON and numbers for people', () => {
  it('tells terminal command statuses and gives each status a tone', () => {
    expect(isTerminal('SUCCEEDED')).toBe(true);
    expect(isTerminal('DELIVERED')).toBe(false);
    expect([statusTone('SUCCEEDED'), statusTone('TIMED_OUT'), statusTone('SENT'), statusTone('x')]).toEqual([
      'ok',
      'bad',
      'wait',
      'neutral',
    ]);
  });

  it('parses JSON input with a message that says what is wrong', () => {
    expect(parseJson('', 'Params')).toEqual({ ok: true, value: undefined });
    expect(parseJson('{"a":1}', 'Params')).toEqual({ ok: true, value: { a: 1 } });
    const bad = parseJson('{a:1}', 'Params');
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.error).toMatch(/^Params is not valid JSON/);
    expect(parseObject('[1]', 'Metadata')).toEqual({ ok: false, error: 'Metadata must be a JSON object' });
    expect(parseObject('', 'Metadata')).toEqual({ ok: true, value: {} });
  });

  it('formats times in UTC, ages, durations, counts and shares', () => {
    expect(formatTime('2026-05-04T10:15:03.250Z')).toBe('2026-05-04 10:15:03 UTC');
    expect(formatTime(null)).toBe('–');
    const now = Date.parse('2026-05-04T12:00:00Z');
    expect(formatAgo('2026-05-04T11:59:57Z', now)).toBe('3 s ago');
    expect(formatAgo('2026-05-04T10:00:00Z', now)).toBe('2 h ago');
    expect(formatAgo('2026-05-04T12:03:00Z', now)).toBe('in 3 min');
    expect(formatAgo(null, now)).toBe('never');
    expect([
      formatDuration(30_000),
      formatDuration(300_000),
      formatDuration(3_600_000),
      formatDuration(86_400_000),
    ]).toEqual(['30 s', '5 min', '1 h', '1 d']);
    expect(formatCount(1234.56)).toBe('1,234.6');
    expect(formatPercent(1, 3)).toBe('33.3 %');
    expect(formatPercent(1, 0)).toBe('–');
  });
});
