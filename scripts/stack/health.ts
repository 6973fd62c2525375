import { setTimeout as delay } from 'node:timers/promises';

/** Whether GET `url` answers 2xx within `timeoutMs` (a refused connection or a timeout is a no). */
export async function probeHealth(url: string, timeoutMs = 2_000): Promise<boolean> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await response.body?.cancel();
    return response.ok;
  } catch {
    return false;
  }
}

/**
 * Polls `url` until it answers 2xx (true), the process behind it is gone (`alive` says no: false), or
 * `timeoutMs` passes (false).
 */
export async function waitHealthy(
  url: string,
  options: { timeoutMs: number; alive: () => boolean; intervalMs?: number },
): Promise<boolean> {
  const deadline = Date.now() + options.timeoutMs;
  while (Date.now() < deadline) {
    if (!options.alive()) return false;
    if (await probeHealth(url, 1_000)) return true;
    await delay(options.intervalMs ?? 100);
  }
  return false;
}
