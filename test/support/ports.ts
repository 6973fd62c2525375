import type { ChildProcess } from 'node:child_process';
import { createConnection, createServer } from 'node:net';

/** A loopback port that was free a moment ago: the OS picks it, and it is closed again before use. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Whether something accepts TCP connections on a loopback port right now. */
export function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Waits until a process this test started listens on `port`; fails at once if it exits first, with
 * `describe()` (e.g. the tail of its log) in the error.
 */
export async function waitForPort(
  port: number,
  child: ChildProcess,
  options: { timeoutMs?: number; describe?: () => string } = {},
): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  const why = () => (options.describe ? `: ${options.describe()}` : '');
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`the service for port ${port} exited with ${child.exitCode}${why()}`);
    if (await accepts(port)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`nothing listens on ${port} after ${options.timeoutMs ?? 60_000} ms${why()}`);
}
