import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

// scripts/launcher.cjs sets the heap flags of the command line back to their defaults once they have sized the
// heap (for Node's built-in code cache). The pod's memory budget rests on the heap keeping the cap it was given:
// this reads V8's own limit after the reset, with and without the flags, and checks that a heap filled past the
// cap still dies of it.
// Required as the CommonJS launchers dist/<name>.js require it.
const launcher = JSON.stringify(resolve('scripts/launcher.cjs'));
const MB = 1024 * 1024;

function heapLimitAfterLauncher(flags: string[]): number {
  const script = `require(${launcher}); const { getHeapStatistics } = require('node:v8');
    process.stdout.write(String(getHeapStatistics().heap_size_limit));`;
  const child = spawnSync(process.execPath, [...flags, '-e', script], { encoding: 'utf8' });
  expect(child.status, child.stderr).toBe(0);
  return Number(child.stdout);
}

describe('launcher: heap flags reset after they sized the heap', () => {
  it('keeps the cap of --max-old-space-size (old space + young generation) after the reset', () => {
    const capped = heapLimitAfterLauncher(['--max-old-space-size=96', '--initial-old-space-size=48']);
    expect(capped).toBeGreaterThanOrEqual(96 * MB);
    expect(capped).toBeLessThan(160 * MB);
    const uncapped = heapLimitAfterLauncher([]);
    expect(uncapped).toBeGreaterThan(capped * 2);
  });

  it('still stops a heap that grows past the cap', () => {
    const script = `require(${launcher}); const keep = [];
      for (;;) keep.push(new Array(100_000).fill(keep.length));`;
    const child = spawnSync(process.execPath, ['--max-old-space-size=64', '-e', script], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(child.signal ?? child.status).not.toBe(0);
    expect(child.stderr).toMatch(/heap out of memory/i);
  });
});
