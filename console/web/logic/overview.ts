/**
 * The fleet overview's figures from the answers of the capabilities (each may be missing: the key lacks its
 * scope, or the function did not answer). Offline is what is registered, active and not online: a device
 * that never connected is offline too.
 */
export interface OverviewInput {
  devices?: { total: number; byStatus: { active: number; disabled: number } };
  telemetry?: { online: number; messagesPerSecond: number; openAlerts: number };
  commands?: { inFlight: number };
  jobs?: { items: { status: string }[] };
  deadLetters?: { pending: number; failingDevices: { deviceId: string }[] };
}

export interface OverviewFigures {
  total?: number;
  online?: number;
  offline?: number;
  disabled?: number;
  messagesPerSecond?: number;
  openAlerts?: number;
  failingDevices?: number;
  commandsInFlight?: number;
  jobsInFlight?: number;
  deadLettersWaiting?: number;
}

const JOBS_IN_FLIGHT = new Set(['IN_PROGRESS', 'SCHEDULED']);

export function overviewFigures(input: OverviewInput): OverviewFigures {
  const figures: OverviewFigures = {};
  if (input.devices) {
    figures.total = input.devices.total;
    figures.disabled = input.devices.byStatus.disabled;
  }
  if (input.telemetry) {
    figures.online = input.telemetry.online;
    figures.messagesPerSecond = input.telemetry.messagesPerSecond;
    figures.openAlerts = input.telemetry.openAlerts;
  }
  if (input.devices && input.telemetry)
    figures.offline = Math.max(0, input.devices.byStatus.active - input.telemetry.online);
  if (input.commands) figures.commandsInFlight = input.commands.inFlight;
  if (input.jobs) figures.jobsInFlight = input.jobs.items.filter((job) => JOBS_IN_FLIGHT.has(job.status)).length;
  if (input.deadLetters) {
    figures.deadLettersWaiting = input.deadLetters.pending;
    figures.failingDevices = input.deadLetters.failingDevices.length;
  }
  return figures;
}

/** One part of a whole, as a bar of the overview draws it. */
export interface Share {
  key: string;
  label: string;
  count: number;
  /** Whole percent; the parts of one bar add up to exactly 100 (or 0 when there is nothing to share). */
  percent: number;
}

/**
 * Whole percentages of `parts` that add up to 100 by the largest remainder (Hamilton's method): plain rounding
 * of 3 × 33.3 % leaves the bar 1 % short, or one over. A part with a count keeps at least 1 % so it stays visible.
 */
export function sharesOf(parts: { key: string; label: string; count: number }[]): Share[] {
  const whole = parts.reduce((sum, part) => sum + Math.max(0, part.count), 0);
  if (whole === 0) return parts.map((part) => ({ ...part, percent: 0 }));
  const exact = parts.map((part) => (Math.max(0, part.count) * 100) / whole);
  const percent = exact.map((value, i) => (parts[i]!.count > 0 ? Math.max(1, Math.floor(value)) : 0));
  let left = 100 - percent.reduce((sum, value) => sum + value, 0);
  const byRemainder = exact
    .map((value, i) => ({ i, remainder: value - Math.floor(value) }))
    .sort((a, b) => b.remainder - a.remainder || a.i - b.i);
  for (let k = 0; left > 0; k = (k + 1) % byRemainder.length, left--) percent[byRemainder[k]!.i]! += 1;
  // The 1 % floor may overshoot: take it back from the largest parts.
  while (left < 0) {
    const largest = percent.indexOf(Math.max(...percent));
    percent[largest]! -= 1;
    left++;
  }
  return parts.map((part, i) => ({ ...part, percent: percent[i]! }));
}

/** The fleet split by what a person acts on: online, offline (active, not connected), disabled. */
export function fleetShares(figures: OverviewFigures): Share[] | undefined {
  if (figures.online === undefined || figures.offline === undefined || figures.disabled === undefined) return undefined;
  return sharesOf([
    { key: 'online', label: 'online', count: figures.online },
    { key: 'offline', label: 'offline', count: figures.offline },
    { key: 'disabled', label: 'disabled', count: figures.disabled },
  ]);
}

/** Devices per type, most first, each as a share of the largest type (a bar's length), at most `limit` rows. */
export function typeRows(
  byType: { type: string | null; devices: number }[],
  limit = 8,
): { type: string | null; label: string; devices: number; percentOfLargest: number }[] {
  const sorted = [...byType].sort((a, b) => b.devices - a.devices || String(a.type).localeCompare(String(b.type)));
  const largest = sorted[0]?.devices ?? 0;
  return sorted.slice(0, limit).map((row) => ({
    type: row.type,
    label: row.type ?? 'no type',
    devices: row.devices,
    percentOfLargest: largest === 0 ? 0 : Math.round((row.devices * 100) / largest),
  }));
}
