import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleEntries } from '../../scripts/build.mjs';

const FIXTURE = 'test/unit/fatal-errors/crash-fixture.ts';

// An entry point bundled as scripts/build.mjs bundles the deployables (CommonJS, launcher, trimmed source map), then
// started as they are: `node <dir>/fixture.js`.
describe('fatal errors of a bundled entry point', () => {
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kiot-fatal-'));
    await bundleEntries({ fixture: FIXTURE }, dir);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const run = (env: Record<string, string>) =>
    spawnSync(process.execPath, [join(dir, 'fixture.js')], {
      env: { PATH: process.env.PATH ?? '', ...env },
      encoding: 'utf8',
    });

  it('a configuration error is one line per problem on stderr and exit status 78', () => {
    const result = run({ FIXTURE_CRASH: 'everywhere' });
    expect(result.status).toBe(78);
    expect(result.stderr).toBe(
      'fixture: configuration error: FIXTURE_CRASH is not one of the allowed values; expected one of in-library\n',
    );
    expect(result.stdout).toBe('');
  });

  it('a bug is one fatal log line whose stack names the TypeScript sources, and exit status 1', () => {
    const result = run({ FIXTURE_CRASH: 'in-library' });
    expect(result.status).toBe(1);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    const record = JSON.parse(lines[0]!) as { level: string; service: string; msg: string; err: { stack: string } };
    expect(record).toMatchObject({ level: 'fatal', service: 'fixture', msg: 'fixture crashed: a bug in kiot code' });
    const frames = record.err.stack.split('\n').filter((line) => line.trimStart().startsWith('at '));
    const source = resolve(FIXTURE);
    // kiot's frames point at the TypeScript: the throw, and the call into the library.
    // V8's own frame format (dist/launcher.cjs maps only the position): zod calls it as its `transform`.
    expect(frames[0]).toBe(`    at Object.failInsideLibrary [as transform] (${source}:10:9)`);
    expect(frames.filter((frame) => frame.includes(source))).toEqual([
      frames[0],
      expect.stringContaining(`${source}:14:`),
    ]);
    // zod's frames in between keep their bundle position: never a line of kiot code they do not run.
    const library = frames.slice(
      1,
      frames.findIndex((frame) => frame.includes(`${source}:14:`)),
    );
    expect(library.length).toBeGreaterThan(0);
    for (const frame of library) expect(frame).toMatch(/fixture\.bundle\.cjs:\d+:\d+\)?$/);
  });

  it("keeps only kiot's own sources in the map, so that mapping a stack stays cheap", () => {
    const map = JSON.parse(readFileSync(join(dir, 'fixture.bundle.cjs.map'), 'utf8')) as {
      sources: string[];
      sourcesContent?: unknown;
    };
    expect(map.sources.map((file) => resolve(dir, file)).sort()).toEqual(
      // shared/config.ts validates REDIS_URL with shared/redis-topology.ts.
      [FIXTURE, 'shared/config.ts', 'shared/fatal-errors.ts', 'shared/logger.ts', 'shared/redis-topology.ts']
        .map((file) => resolve(file))
        .sort(),
    );
    expect(map.sourcesContent).toBeUndefined();
    expect(statSync(join(dir, 'fixture.bundle.cjs.map')).size).toBeLessThan(
      statSync(join(dir, 'fixture.bundle.cjs')).size / 20,
    );
  });
});
