import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from './lib/manifests.js';

// The capacity plan (npm run simulate:capacity: tools/knative `capacity simulate`, Knative's own KPA) run as CI
// runs it, on the manifests and measured capacities of the repository, and the invariants its output must keep.
interface Scenario {
  devices: number;
  peak_replicas: Record<string, number>;
  peak_replicas_total: number;
  pod_hours: Record<string, number>;
  pod_hours_per_day: number;
  always_on_pod_hours_per_day: number;
  p99_queue_ms_at_peak: Record<string, number>;
  minutes_at_zero: Record<string, number>;
  cold_starts: Record<string, number>;
}

const svgDir = mkdtempSync(join(tmpdir(), 'kiot-capacity-'));
const run = spawnSync('bash', ['scripts/simulate-capacity.sh', '--svg', svgDir], {
  cwd: ROOT,
  encoding: 'utf8',
  maxBuffer: 16 << 20,
});
const lines = run.stdout.trim().split('\n').filter(Boolean);
const scenarios = lines.map((line) => JSON.parse(line) as Scenario);
const settings = JSON.parse(
  spawnSync(join(ROOT, '.kiot/bin/knative-capacity'), ['autoscaling', ...servicesFiles()], { encoding: 'utf8' }).stdout,
) as { service: string; maxScale: number }[];
const maxScale = new Map(settings.map((s) => [s.service, s.maxScale]));

function servicesFiles(): string[] {
  const dir = join(ROOT, 'knative', 'services');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
    .map((f) => join(dir, f));
}

afterAll(() => rmSync(svgDir, { recursive: true, force: true }));

describe('capacity plan (npm run simulate:capacity)', () => {
  it('prints one JSON line per fleet size: 10,000, 100,000 and 1,000,000 devices', () => {
    expect(run.status, run.stderr).toBe(0);
    expect(scenarios.map((s) => s.devices)).toEqual([10_000, 100_000, 1_000_000]);
  });

  it('never asks for more replicas than a Service allows, and costs less than always-on pods sized for the peak', () => {
    for (const s of scenarios) {
      for (const [service, peak] of Object.entries(s.peak_replicas))
        expect(peak, `${s.devices} devices: ${service}`).toBeLessThanOrEqual(maxScale.get(service)!);
      expect(s.pod_hours_per_day).toBeLessThan(s.always_on_pod_hours_per_day);
    }
  });

  it('telemetry-ingest carries every evening peak without queueing and grows with the fleet', () => {
    const peaks = scenarios.map((s) => s.peak_replicas['telemetry-ingest']!);
    expect(peaks).toEqual([...peaks].sort((a, b) => a - b));
    expect(peaks[2]!).toBeGreaterThan(peaks[0]!);
    for (const s of scenarios) expect(s.p99_queue_ms_at_peak['telemetry-ingest'], `${s.devices}`).toBeLessThan(1_000);
  });

  it('a function nothing calls stays at zero all day (api-keys)', () => {
    for (const s of scenarios) {
      expect(s.minutes_at_zero['api-keys']).toBe(1440);
      expect(s.pod_hours['api-keys']).toBe(0);
    }
  });

  it('plots the replicas of every modelled function over the day, one SVG per fleet size', () => {
    for (const s of scenarios) {
      const svg = readFileSync(join(svgDir, `replicas-${s.devices}.svg`), 'utf8');
      expect(svg).toMatch(/<svg[\s>]/);
      for (const service of Object.keys(s.peak_replicas)) expect(svg).toContain(service);
    }
  });

  it('docs/capacity.md quotes the figures this run prints', () => {
    const rows = readFileSync(join(ROOT, 'docs', 'capacity.md'), 'utf8')
      .split('\n')
      .map((line) => line.split('|').map((cell) => cell.trim()))
      .filter((cells) => cells.length > 6);
    for (const s of scenarios) {
      const expected = [
        s.devices.toLocaleString('en-US'),
        String(s.peak_replicas_total),
        String(s.peak_replicas['telemetry-ingest']),
        String(s.pod_hours_per_day),
        String(s.always_on_pod_hours_per_day),
      ];
      expect(
        rows.some((cells) => expected.every((cell, i) => cells[i + 1] === cell)),
        expected.join(' | '),
      ).toBe(true);
    }
  });
});
