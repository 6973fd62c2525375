// CPU accounting for benchmarks: where the CPU of a phase went, per process, from /proc (Linux).
import { readdirSync, readFileSync } from 'node:fs';

/** CPU seconds a process has used so far (utime + stime, /proc/<pid>/stat, 100 ticks per second). */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** The pids of the processes whose command name is one of `names` (e.g. the loopback services). */
export function pidsByName(names: Record<string, string>): Record<string, number> {
  const found: Record<string, number> = {};
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const comm = readFileSync(`/proc/${entry}/comm`, 'utf8').trim();
      for (const [label, name] of Object.entries(names))
        if (comm === name && found[label] === undefined) found[label] = Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  return found;
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
      // ended before the phase (another bench's private service found by name): not part of this one
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
