/** A command's lifecycle as command-dispatch defines it (functions/command-dispatch/lifecycle.ts). */
export const TERMINAL = new Set(['SUCCEEDED', 'FAILED', 'REJECTED', 'EXPIRED', 'TIMED_OUT', 'CANCELLED']);
export const IN_FLIGHT = ['QUEUED', 'SENT', 'DELIVERED'] as const;

export function isTerminal(status: string): boolean {
  return TERMINAL.has(status);
}

/** The tone of a status badge: good, bad, waiting. */
export function statusTone(status: string): 'ok' | 'bad' | 'wait' | 'neutral' {
  if (['SUCCEEDED', 'COMPLETED', 'online', 'active', 'replayed'].includes(status)) return 'ok';
  if (
    [
      'FAILED',
      'REJECTED',
      'EXPIRED',
      'TIMED_OUT',
      'CANCELED',
      'CANCELLED',
      'ABORTED',
      'disabled',
      'pending',
      'critical',
    ].includes(status)
  )
    return 'bad';
  if (['QUEUED', 'SENT', 'DELIVERED', 'IN_PROGRESS', 'SCHEDULED', 'warning'].includes(status)) return 'wait';
  return 'neutral';
}

/** JSON typed into a text area: the value, or a message saying where it is wrong. */
export function parseJson(text: string, what: string): { ok: true; value: unknown } | { ok: false; error: string } {
  if (text.trim() === '') return { ok: true, value: undefined };
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (error) {
    return { ok: false, error: `${what} is not valid JSON: ${(error as Error).message}` };
  }
}

/** A JSON object (a desired-state patch, metadata): anything else is refused before it is sent. */
export function parseObject(
  text: string,
  what: string,
): { ok: true; value: Record<string, unknown> } | { ok: false; error: string } {
  const parsed = parseJson(text, what);
  if (!parsed.ok) return parsed;
  const value = parsed.value ?? {};
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return { ok: false, error: `${what} must be a JSON object` };
  return { ok: true, value: value as Record<string, unknown> };
}

/** An ETag as the APIs send it (`"7"`), from a version. */
export const etagOf = (version: number) => `"${version}"`;
