import { parse, pattern, toSeconds } from 'iso8601-duration';

/**
 * ISO 8601 durations, as Knative Eventing reads them (delivery spec: `backoffDelay`, `timeout` and
 * `retryAfterMax` are ISO 8601 durations such as `PT0.2S`, parsed with rickb777/date `period.Parse`), parsed by
 * the `iso8601-duration` library. Its pattern finds a duration anywhere in a text, so we anchor it: the whole
 * text must be one duration (no sign — a negative delay means nothing here — and no blanks), and a time
 * designator `T` needs a time part after it (ISO 8601 4.4.3.2). Years and months are calendar lengths counted
 * from now; only absurd backoff settings use them.
 */
const WHOLE_DURATION = new RegExp(`^${pattern.source}$`);

/** Milliseconds of an ISO 8601 duration, or `undefined` if the text is not one. */
export function parseIsoDurationMs(text: string): number | undefined {
  if (!WHOLE_DURATION.test(text.replaceAll(',', '.')) || text.endsWith('T')) return undefined;
  try {
    return Math.round(toSeconds(parse(text)) * 1_000);
  } catch {
    return undefined;
  }
}
