/**
 * ISO 8601 durations, as Knative Eventing reads them (delivery spec: `backoffDelay`, `timeout` and
 * `retryAfterMax` are ISO 8601 durations such as `PT0.2S`, parsed with rickb777/date `period.Parse`).
 * Years and months have no fixed length; like `period.Duration()` we take the mean Gregorian year
 * (365.2425 days) and a twelfth of it per month, which only matters for absurd backoff settings.
 */
const NUMBER = String.raw`(\d+(?:[.,]\d+)?)`;
const PATTERN = new RegExp(
  `^([-+])?P(?:${NUMBER}Y)?(?:${NUMBER}M)?(?:${NUMBER}W)?(?:${NUMBER}D)?(?:T(?:${NUMBER}H)?(?:${NUMBER}M)?(?:${NUMBER}S)?)?$`,
);

const SECOND = 1_000;
const DAY = 86_400 * SECOND;
const YEAR = 365.2425 * DAY;
const UNIT_MS = [YEAR, YEAR / 12, 7 * DAY, DAY, 3_600 * SECOND, 60 * SECOND, SECOND] as const;

/** Milliseconds of an ISO 8601 duration, or `undefined` if the text is not one (or is negative). */
export function parseIsoDurationMs(text: string): number | undefined {
  const match = PATTERN.exec(text);
  if (!match) return undefined;
  const [, sign, ...parts] = match;
  // `P` and `PT` alone carry no component: the standard requires at least one.
  if (parts.every((part) => part === undefined)) return undefined;
  if (text.includes('T') && parts.slice(4).every((part) => part === undefined)) return undefined;
  if (sign === '-') return undefined;
  let ms = 0;
  parts.forEach((part, index) => {
    if (part !== undefined) ms += Number(part.replace(',', '.')) * UNIT_MS[index]!;
  });
  return Math.round(ms);
}
