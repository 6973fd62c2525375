import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

/**
 * A machine-wide turn for test files that each run a whole `npm start` stack (power cut, the supervised stack,
 * the console): two of them at once on two cores starve each other (a power-cut round then finds its devices'
 * burst over their rate limit), so they take turns whatever files vitest runs in parallel. A lock file made
 * with O_EXCL holds the owner's pid; a lock whose owner is gone is taken over.
 */
export async function takeTurn(name: string, timeoutMs = 900_000): Promise<() => void> {
  const path = join(tmpdir(), `kiot-turn-${name}.lock`);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(path, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    let owner = Number.NaN;
    try {
      owner = Number(readFileSync(path, 'utf8'));
    } catch {
      continue; // released meanwhile
    }
    if (Number.isInteger(owner) && owner > 0 && !alive(owner)) rmSync(path, { force: true });
    if (Date.now() > deadline) throw new Error(`waited ${timeoutMs} ms for the ${name} turn (held by pid ${owner})`);
    await delay(1_000);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
