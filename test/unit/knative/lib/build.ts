import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './manifests.js';

const LOCK = join(tmpdir(), `kiot-build-${createHash('sha256').update(ROOT).digest('hex').slice(0, 12)}.lock`);

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * `npm run build` (scripts/build.mjs), one test file at a time: a lock directory keeps two files from
 * rewriting dist/ at once. Returns the build's output (the bundle list).
 */
export function buildBundles(): string {
  for (;;) {
    try {
      mkdirSync(LOCK);
      break;
    } catch {
      try {
        if (Date.now() - statSync(LOCK).mtimeMs > 120_000) rmSync(LOCK, { recursive: true, force: true });
      } catch {
        // the holder just released it
      }
      sleepSync(100);
    }
  }
  try {
    const result = spawnSync('node', ['scripts/build.mjs'], { cwd: ROOT, encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`build failed: ${result.stderr}`);
    return result.stdout;
  } finally {
    rmSync(LOCK, { recursive: true, force: true });
  }
}
