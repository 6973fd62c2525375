/** Go's `time.ParseDuration` (what Knative uses for autoscaling annotations): "60s", "1h30m", "1.5h", "0". */
export function parseGoDurationMs(text: string): number | undefined {
  if (text === '0') return 0;
  const units: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
  const pattern = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/gy;
  if (!/^[+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h))+$/.test(text)) return undefined;
  let total = 0;
  pattern.lastIndex = text.startsWith('+') ? 1 : 0;
  for (let match = pattern.exec(text); match; match = pattern.exec(text)) total += Number(match[1]) * units[match[2]!]!;
  return total;
}

/** ISO 8601 durations as Knative's delivery spec takes them (`PT0.2S`, `PT1M`, `P1D`). */
export function parseIsoDurationMs(text: string): number | undefined {
  const match =
    /^P(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$/.exec(
      text,
    );
  if (!match || text === 'P' || text.endsWith('T')) return undefined;
  const [, w, d, h, m, s] = match.map((part) => (part === undefined ? 0 : Number(part)));
  return ((((w! * 7 + d!) * 24 + h!) * 60 + m!) * 60 + s!) * 1000;
}
