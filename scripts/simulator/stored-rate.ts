/** The samples telemetry-ingest has stored, read from its `/metrics` (`kiot_telemetry_samples_stored_total`). */
export interface StoredRate {
  /** Samples stored so far and per second since the previous call; undefined until the first answer. */
  sample(): { total: number; perSecond: number } | undefined;
  stop(): void;
}

const STORED = /^kiot_telemetry_samples_stored_total(?:\{[^}]*\})? ([0-9.e+]+)$/m;

/**
 * Polls the stored-samples counter every `intervalMs`, so that the progress line shows what reached MongoDB
 * next to what the devices sent: with telemetry batching the bridge holds messages for up to its linger time,
 * and a stack that falls behind shows as a stored rate under the sent one rather than only as a growing lag.
 */
export function watchStoredRate(metricsUrl: string, intervalMs: number): StoredRate {
  let latest: { total: number; at: number } | undefined;
  let previous: { total: number; at: number } | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const poll = async () => {
    try {
      const answer = await fetch(metricsUrl, { signal: AbortSignal.timeout(Math.max(500, intervalMs)) });
      const match = STORED.exec(await answer.text());
      if (match) latest = { total: Number(match[1]), at: Date.now() };
    } catch {
      // telemetry-ingest not answering: the health watch names it; the last figure stays.
    }
    if (!stopped) timer = setTimeout(() => void poll(), intervalMs).unref();
  };
  void poll();
  return {
    sample() {
      if (!latest) return undefined;
      const since = previous ?? { total: latest.total, at: latest.at };
      const seconds = (latest.at - since.at) / 1000;
      previous = latest;
      return { total: latest.total, perSecond: seconds > 0 ? (latest.total - since.total) / seconds : 0 };
    },
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
