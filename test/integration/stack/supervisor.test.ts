import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { probeHealth } from '../../../scripts/stack/health.js';
import {
  type ComponentSpec,
  createSupervisor,
  DEFAULT_POLICY,
  type RestartPolicy,
  type Supervisor,
} from '../../../scripts/stack/supervisor.js';
import { freePort } from '../../support/ports.js';

// A component as the stack runs one: a child process with a health endpoint. This one serves /healthz on
// PORT and, when asked, says "boom" and exits EXIT_STATUS EXIT_AFTER_MS after its first health check.
const COMPONENT = `
const { createServer } = require('node:http');
let dying = false;
createServer((req, res) => {
  res.writeHead(req.url === '/healthz' ? 200 : 404).end();
  if (process.env.EXIT_AFTER_MS && !dying) {
    dying = true;
    setTimeout(() => { console.error('boom'); process.exit(Number(process.env.EXIT_STATUS)); }, Number(process.env.EXIT_AFTER_MS));
  }
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

const fast: RestartPolicy = {
  ...DEFAULT_POLICY,
  initialDelayMs: 20,
  maxDelayMs: 80,
  maxRestarts: 3,
  readyTimeoutMs: 20_000,
  stopTimeoutMs: 5_000,
};

async function until(condition: () => boolean, what: string, timeoutMs = 25_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(20);
  }
}

describe('the stack supervisor', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiot-supervisor-'));
  let lines: string[] = [];
  let supervisor: Supervisor;
  const names: string[] = [];
  afterEach(async () => {
    for (const name of names.splice(0)) await supervisor.stop(name);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function component(name: string, env: Record<string, string> = {}): Promise<ComponentSpec> {
    const port = await freePort();
    names.push(name);
    return {
      name,
      command: process.execPath,
      args: ['-e', COMPONENT],
      env: { PATH: process.env.PATH, PORT: String(port), ...env },
      logFile: join(dir, `${name}.log`),
      healthUrl: `http://127.0.0.1:${port}/healthz`,
    };
  }
  const start = (policy: RestartPolicy) => {
    lines = [];
    supervisor = createSupervisor((line) => lines.push(line), policy);
    return supervisor;
  };

  it('restarts a component killed by a signal, says what happened, and it answers again', async () => {
    start(fast);
    const spec = await component('killed');
    await supervisor.start(spec);
    const first = supervisor.pid('killed')!;
    process.kill(first, 'SIGKILL');
    await until(() => lines.some((line) => line.startsWith('killed restarted')), 'the restart');
    expect(lines[0]).toMatch(
      /^killed was killed by SIGKILL after [\d.]+ s; restarting it in 0\.0 s \(restart 1 of at most 3 in a row\)$/,
    );
    expect(lines[1]).toMatch(/^killed restarted \(pid \d+\) and healthy after [\d.]+ s$/);
    expect(supervisor.state('killed')).toBe('up');
    expect(supervisor.pid('killed')).not.toBe(first);
    expect(await probeHealth(spec.healthUrl)).toBe(true);
    expect(readFileSync(spec.logFile, 'utf8')).toContain('restarted by the stack after it was killed by SIGKILL');
  });

  it('backs off (doubling up to its cap) and gives up loudly after repeated quick deaths, with the end of its log', async () => {
    start({ ...fast, initialDelayMs: 100, maxDelayMs: 400, maxRestarts: 4 });
    await supervisor.start(await component('crashy', { EXIT_AFTER_MS: '50', EXIT_STATUS: '3' }));
    await until(() => supervisor.state('crashy') === 'failed', 'giving up');
    const restarting = lines.filter((line) => line.includes('restarting it in'));
    expect(restarting.map((line) => /restarting it in ([\d.]+ s) \(restart (\d) of/.exec(line)?.slice(1))).toEqual([
      ['0.1 s', '1'],
      ['0.2 s', '2'],
      ['0.4 s', '3'],
      ['0.4 s', '4'],
    ]);
    // Each death is followed by its restart line before the next death: it really ran again each time.
    expect(lines.filter((line) => line.startsWith('crashy restarted (pid'))).toHaveLength(4);
    const gaveUp = lines.at(-1)!;
    expect(gaveUp).toMatch(
      /^GIVING UP on crashy: it exited with status 3, the 5th time in a row within 30 s of starting\./,
    );
    expect(gaveUp).toContain('The rest of the stack runs on without it.');
    expect(gaveUp).toMatch(/Last lines of .*crashy\.log:\n {4}boom/);
    expect(supervisor.pid('crashy')).toBeUndefined();
  });

  it('does not restart a component whose configuration is invalid (exit status 78)', async () => {
    start(fast);
    await supervisor.start(await component('misconfigured', { EXIT_AFTER_MS: '50', EXIT_STATUS: '78' }));
    await until(() => supervisor.state('misconfigured') === 'failed', 'the verdict');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^misconfigured exited with status 78: its configuration is invalid, so it is not restarted\./,
    );
  });

  it('starts the count over after a run of stableAfterMs, so a rare crash never adds up to giving up', async () => {
    start({ ...fast, maxRestarts: 1, stableAfterMs: 200 });
    await supervisor.start(await component('rare', { EXIT_AFTER_MS: '400', EXIT_STATUS: '1' }));
    await until(() => lines.filter((line) => line.startsWith('rare restarted')).length >= 3, 'three restarts');
    expect(lines.some((line) => line.startsWith('GIVING UP'))).toBe(false);
    expect(lines.filter((line) => line.includes('restarting it in'))).toHaveLength(3);
    for (const line of lines.filter((l) => l.includes('restarting it in'))) expect(line).toContain('(restart 1 of');
  });

  it('never restarts what it was asked to stop, and a first start that fails is an error', async () => {
    start(fast);
    await supervisor.start(await component('stopped'));
    await supervisor.stop('stopped');
    expect(supervisor.state('stopped')).toBe('stopped');
    const broken = { ...(await component('broken')), args: ['-e', 'process.exit(1)'] };
    await expect(supervisor.start(broken)).rejects.toThrow(/broken did not become healthy/);
    await delay(200);
    expect(lines).toEqual([]);
  });
});
