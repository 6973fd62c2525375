import { probeHealth } from '../stack/health.js';

export interface HealthWatch {
  /** The components whose last health check failed, in the order given. */
  down(): string[];
  stop(): void;
}

/**
 * Checks each component's health URL every `intervalMs` (one check at a time per component), so the
 * progress line can say which part of the stack is not answering: a crashed bridge shows at once rather
 * than as a count that stops growing.
 */
export function watchHealth(targets: ReadonlyMap<string, string>, intervalMs: number): HealthWatch {
  const failing = new Set<string>();
  let stopped = false;
  const timers = new Map<string, NodeJS.Timeout>();
  for (const [name, url] of targets) {
    const check = async () => {
      const healthy = await probeHealth(url, Math.max(500, intervalMs));
      if (healthy) failing.delete(name);
      else failing.add(name);
      if (!stopped) timers.set(name, setTimeout(() => void check(), intervalMs).unref());
    };
    void check();
  }
  return {
    down: () => [...targets.keys()].filter((name) => failing.has(name)),
    stop: () => {
      stopped = true;
      for (const timer of timers.values()) clearTimeout(timer);
    },
  };
}
