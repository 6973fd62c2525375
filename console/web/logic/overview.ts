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
