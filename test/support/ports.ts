import type { ChildProcess } from 'node:child_process';
import { createConnection, createServer } from 'node:net';

/*
 * Ports handed out below the kernel's ephemeral range (net.ipv4.ip_local_port_range, 32768–60999 by
 * default): a port the OS picked with listen(0) and closed again is in that range, and every outgoing
 * connection of the run (hundreds per second under the pipeline tests) may take it as its local port
 * before the test's server binds it — EADDRINUSE, seen in CI. Below 32768 only another explicit pick
 * can collide; each vitest worker draws from its own slice, and a process never hands a port out twice.
 */
const RANGE_START = 10_000;
const RANGE_END = 20_000;
const SLICES = 8;
const handedOut = new Set<number>();

function bindable(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    // A host without IPv6 cannot bind '::' at all (EAFNOSUPPORT): nothing can take the port there either.
    server.once('error', (error: NodeJS.ErrnoException) =>
      resolve(error.code !== 'EADDRINUSE' && error.code !== 'EACCES'),
    );
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** A loopback port nothing was bound to a moment ago, outside the range outgoing connections draw from. */
export async function freePort(): Promise<number> {
  const worker = Number(process.env.VITEST_POOL_ID ?? process.pid) % SLICES;
  const width = (RANGE_END - RANGE_START) / SLICES;
  const start = RANGE_START + worker * width;
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = start + Math.floor(Math.random() * width);
    if (handedOut.has(port)) continue;
    if ((await bindable(port, '127.0.0.1')) && (await bindable(port, '::'))) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free port in ${start}–${start + width - 1} after 200 attempts`);
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
