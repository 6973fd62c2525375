/**
 * The cron syntax of a PingSource schedule as Knative's webhook parses it (robfig/cron standard parser:
 * five fields, `@every <duration>` and the `@hourly`-style descriptors, optional `CRON_TZ=`/`TZ=` prefix).
 */
const FIELDS: { name: string; min: number; max: number; names?: string[] }[] = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  {
    name: 'month',
    min: 1,
    max: 12,
    names: ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'],
  },
  { name: 'day of week', min: 0, max: 6, names: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] },
];

const DESCRIPTORS = new Set(['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly']);

function value(text: string, field: (typeof FIELDS)[number]): number | undefined {
  const index = field.names?.indexOf(text.toLowerCase()) ?? -1;
  if (index >= 0) return index + field.min;
  if (!/^\d+$/.test(text)) return undefined;
  const n = Number(text);
  return n >= field.min && n <= field.max ? n : undefined;
}

function fieldIssue(text: string, field: (typeof FIELDS)[number]): string | undefined {
  for (const part of text.split(',')) {
    const [range, step] = part.split('/');
    if (step !== undefined && (!/^\d+$/.test(step) || Number(step) === 0))
      return `${field.name}: bad step in "${part}"`;
    if (range === '*' || range === '?') continue;
    const [from, to] = range!.split('-');
    const a = value(from!, field);
    const b = to === undefined ? a : value(to, field);
    if (a === undefined || b === undefined || a > b)
      return `${field.name}: "${part}" is out of ${field.min}-${field.max}`;
  }
  return undefined;
}

export function validTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** Why a schedule is invalid, or undefined. */
export function cronIssue(schedule: string, durationOk: (text: string) => boolean): string | undefined {
  let rest = schedule.trim();
  const tz = /^(?:CRON_TZ|TZ)=(\S+)\s+/.exec(rest);
  if (tz) {
    if (!validTimeZone(tz[1]!)) return `unknown time zone ${tz[1]}`;
    rest = rest.slice(tz[0].length);
  }
  if (rest.startsWith('@every '))
    return durationOk(rest.slice(7).trim()) ? undefined : `bad @every duration in "${schedule}"`;
  if (rest.startsWith('@')) return DESCRIPTORS.has(rest) ? undefined : `unknown descriptor ${rest}`;
  const fields = rest.split(/\s+/);
  if (fields.length !== 5) return `expected 5 fields, found ${fields.length} in "${schedule}"`;
  for (const [index, text] of fields.entries()) {
    const issue = fieldIssue(text, FIELDS[index]!);
    if (issue) return issue;
  }
  return undefined;
}
