/** Formatting for people: numbers, times, durations. Pure, so that the view tests read plain strings. */

const numberFormat = new Intl.NumberFormat('en', { maximumFractionDigits: 1 });
const preciseFormat = new Intl.NumberFormat('en', { maximumFractionDigits: 3 });

export function formatCount(value: number | null | undefined): string {
  return value === null || value === undefined ? '–' : numberFormat.format(value);
}

export function formatValue(value: number | null | undefined): string {
  return value === null || value === undefined || !Number.isFinite(value) ? '–' : preciseFormat.format(value);
}

/** `2026-05-04 10:15:03` in UTC: one unambiguous form everywhere in the console. */
export function formatTime(iso: string | number | null | undefined): string {
  if (iso === null || iso === undefined) return '–';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '–';
  return `${date.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

/** `3 s ago`, `5 min ago`, `2 h ago`, `4 d ago`; `in 3 min` for the future. */
export function formatAgo(iso: string | number | null | undefined, now: number): string {
  if (iso === null || iso === undefined) return 'never';
  const at = new Date(iso).getTime();
  if (Number.isNaN(at)) return 'never';
  const seconds = Math.round((now - at) / 1000);
  const abs = Math.abs(seconds);
  const text =
    abs < 60
      ? `${abs} s`
      : abs < 3_600
        ? `${Math.floor(abs / 60)} min`
        : abs < 86_400
          ? `${Math.floor(abs / 3_600)} h`
          : `${Math.floor(abs / 86_400)} d`;
  return seconds >= 0 ? `${text} ago` : `in ${text}`;
}

/** Pretty JSON for a view of a document. */
export function formatJson(value: unknown): string {
  return JSON.stringify(value ?? null, null, 2);
}

/** A percentage of a whole, `–` when there is no whole. */
export function formatPercent(part: number, whole: number): string {
  if (!whole) return '–';
  return `${numberFormat.format((100 * part) / whole)} %`;
}

/** A duration in its largest whole unit: `30 s`, `5 min`, `1 h`, `1 d`. */
export function formatDuration(ms: number): string {
  if (ms >= 86_400_000 && ms % 86_400_000 === 0) return `${ms / 86_400_000} d`;
  if (ms >= 3_600_000 && ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms >= 60_000 && ms % 60_000 === 0) return `${ms / 60_000} min`;
  return `${Math.round(ms / 1000)} s`;
}
