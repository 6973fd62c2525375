// CPU accounting for benchmarks: where the CPU of a phase went, per process, from /proc (Linux).
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** CPU seconds a process has used so far (utime + stime, /proc/<pid>/stat, 100 ticks per second). */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * CPU milliseconds a process has used so far, to the nanosecond: the sum over its threads of the time the scheduler
 * ran them (/proc/<pid>/task/<tid>/schedstat, first field). Where a figure is a few hundred milliseconds, the
 * 10 ms ticks of `cpuSeconds` are too coarse to compare two starts.
 */
export function cpuMsPrecise(pid: number): number {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // the thread ended meanwhile
    }
  }
  return ns / 1e6;
}

export type CpuPerUnit = Record<string, number>;

/** CPU µs per unit of work of each process over a phase; `total` is what the whole pipeline spends on one. */
export function cpuMeter(pids: Record<string, number | undefined>) {
  const before = new Map<string, number>();
  const live: [string, number][] = [];
  for (const [name, pid] of Object.entries(pids)) {
    if (pid === undefined) continue;
    try {
      before.set(name, cpuSeconds(pid));
      live.push([name, pid]);
    } catch {
      // ended before the phase (a server gone since it was found): not part of this one
    }
  }
  return {
    perUnit(units: number): CpuPerUnit {
      const out: CpuPerUnit = {};
      for (const [name, pid] of live) {
        try {
          out[name] = Math.round(((cpuSeconds(pid) - before.get(name)!) * 1e6) / units);
        } catch {
          // the process ended during the phase: its share is unknown
        }
      }
      out.total = Object.values(out).reduce((sum, us) => sum + us, 0);
      return out;
    },
  };
}

export const describeCpu = (cpu: CpuPerUnit) =>
  Object.entries(cpu)
    .map(([name, us]) => `${name} ${us} µs`)
    .join(', ');

/**
 * The pid of the process listening on a TCP port of this machine (Linux: /proc/net/tcp{,6} then the socket
 * inode among /proc/<pid>/fd), or undefined. Finds the very server a bench talks to where several processes
 * share a name (other people's Mongo or Redis instances on the same host).
 */
export function pidListeningOn(port: number): number | undefined {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      // local_address is ADDR:PORT in hex; state 0A is LISTEN; field 9 is the inode.
      if (fields[1]?.endsWith(`:${hexPort}`) && fields[3] === '0A' && fields[9]) inodes.add(fields[9]);
    }
  }
  if (inodes.size === 0) return undefined;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${entry}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const link = readlinkSync(`/proc/${entry}/fd/${fd}`);
        if (link.startsWith('socket:[') && inodes.has(link.slice(8, -1))) return Number(entry);
      } catch {
        // gone meanwhile
      }
    }
  }
  return undefined;
}

/**
 * The pid of the server of a URL (`redis://127.0.0.1:26379`, `mongodb://…:27027`) on this machine; none for a URL
 * naming several servers (a Redis Cluster's seeds: `--redis-cluster` measures its nodes itself).
 */
export const pidOfServer = (url: string) =>
  URL.canParse(url) && new URL(url).port ? pidListeningOn(Number(new URL(url).port)) : undefined;
