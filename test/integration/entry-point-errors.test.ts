import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBundles } from '../unit/knative/lib/build.js';
import { ROOT } from '../unit/knative/lib/manifests.js';

// Every entry point started as `node dist/<name>.js` with settings missing or wrong: one readable line per
// problem and exit status 78 (README "Exit statuses"); a failure that is not about settings: one fatal log
// line whose stack names the TypeScript sources, and status 1.
describe('entry points: configuration errors and crashes a person can read', () => {
  let copy: string;
  beforeAll(() => {
    buildBundles();
    // A copy of dist/: a rebuild by another test file cannot change it under us.
    copy = mkdtempSync(join(tmpdir(), 'kiot-entry-'));
    cpSync(join(ROOT, 'dist'), join(copy, 'dist'), { recursive: true });
    writeFileSync(join(copy, 'package.json'), JSON.stringify({ type: 'module' }));
    symlinkSync(join(ROOT, 'node_modules'), join(copy, 'node_modules'));
  }, 120_000);
  afterAll(() => rmSync(copy, { recursive: true, force: true }));

  const start = (name: string, env: Record<string, string>) =>
    spawnSync(process.execPath, [`dist/${name}.js`], {
      cwd: copy,
      env: { PATH: process.env.PATH ?? '', ...env },
      encoding: 'utf8',
      timeout: 20_000,
    });
  // Not the benchmarks, nor the AsyncAPI generator (`npm run asyncapi`): build tools that read no settings.
  const entryPoints = () =>
    readdirSync(join(ROOT, 'dist'))
      .filter((file) => /^[a-z-]+\.js$/.test(file) && !file.startsWith('bench-') && file !== 'asyncapi.js')
      .map((file) => file.replace(/\.js$/, ''));

  it('the bridge without DEAD_LETTER_SINK names it, alone, and exits with 78', () => {
    const result = start('bridge', { MQTT_URL: 'mqtt://127.0.0.1:1', K_SINK: 'http://127.0.0.1:1/' });
    expect(result.status).toBe(78);
    expect(result.stderr).toBe(
      'bridge: configuration error: DEAD_LETTER_SINK is not set; expected a URL with protocol http: or https:\n',
    );
    expect(result.stdout).toBe('');
  });

  it('every entry point reports each bad setting on a line of its own and exits with 78', () => {
    const names = entryPoints();
    expect(names).toEqual(expect.arrayContaining(['bridge', 'router', 'simulator', 'stack', 'telemetry-ingest']));
    for (const name of names) {
      // Wrong everywhere: a port that is no number, a log level that does not exist (and, for most, URLs unset).
      const result = start(name, { PORT: 'eighty', ROUTER_PORT: 'eighty', LOG_LEVEL: 'loud' });
      expect(result.status, `${name}: ${result.stderr}`).toBe(78);
      const lines = result.stderr.trimEnd().split('\n');
      // The supervised stack (npm start) has no port of its own; it is told the router's.
      const port = name === 'stack' ? 'ROUTER_PORT' : 'PORT';
      const range = name === 'stack' ? '1 to 65535' : '0 to 65535';
      expect(lines).toEqual(
        expect.arrayContaining([
          `${name}: configuration error: ${port} is not a number; expected a whole number from ${range}`,
          `${name}: configuration error: LOG_LEVEL is not one of the allowed values; expected one of fatal, error, warn, info, debug, trace, silent`,
        ]),
      );
      for (const line of lines) {
        expect(line).toMatch(
          new RegExp(`^${name}: configuration error: [A-Z][A-Z0-9_]*(\\[\\d+\\]|\\.\\w+)* .+; expected .+$`),
        );
        expect(line.length, line).toBeLessThan(200);
      }
      expect(result.stdout, name).toBe('');
    }
  });

  it('a failure that is not a setting: one fatal log line, its stack in the TypeScript sources, status 1', () => {
    const manifests = join(copy, 'broken-manifests');
    mkdirSync(manifests);
    writeFileSync(
      join(manifests, 'broker.yaml'),
      'apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata: {name: [\n',
    );
    const result = start('router', {
      KNATIVE_DIR: manifests,
      PORT: '0',
      ROUTER_DEAD_LETTER_FILE: join(copy, 'dead-letters.jsonl'),
    });
    expect(result.status).toBe(1);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    const record = JSON.parse(lines[0]!) as { level: string; msg: string; err: { stack: string } };
    expect(record.level).toBe('fatal');
    expect(record.msg).toMatch(/^router crashed: .*broker\.yaml/);
    // Relative to the copied dist/ (as in the image): the sources' paths, with TypeScript lines.
    expect(record.err.stack).toMatch(
      new RegExp(`at readManifests \\(${copy}/scripts/router/load-manifests\\.ts:\\d+:\\d+\\)`),
    );
    expect(record.err.stack).toMatch(/scripts\/router\/main\.ts:\d+:\d+/);
    expect(record.err.stack).not.toMatch(/router\.bundle\.js/);
  });
});
