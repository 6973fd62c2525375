/**
 * The command lifecycle (modelled on ThingsBoard persistent RPC and Azure IoT Hub C2D feedback):
 *
 *   QUEUED ─▶ SENT ─▶ DELIVERED ─▶ SUCCEEDED | FAILED | REJECTED
 *     │  ╲      │  ╲       ╲
 *     │   ╲     │   ╲       ▶ TIMED_OUT   (no result by `deadlineAt`, counted from the last send)
 *     │    ╲    ▶ TIMED_OUT
 *     ▶ EXPIRED  (TTL passed before it was sent)      QUEUED ─▶ CANCELLED (DELETE while queued)
 *
 * Transitions only move forward. Every write filters on the allowed previous states, so a late or
 * duplicate ack (or a sweep racing an ack) matches nothing and changes nothing. An ack may overtake the
 * SENT write on the fast path (publish and SENT mark run together), hence QUEUED is an allowed
 * previous state of the device's answers.
 */
export const COMMAND_STATUSES = [
  'QUEUED',
  'SENT',
  'DELIVERED',
  'SUCCEEDED',
  'FAILED',
  'REJECTED',
  'EXPIRED',
  'TIMED_OUT',
  'CANCELLED',
] as const;
export type CommandStatus = (typeof COMMAND_STATUSES)[number];

export const TERMINAL_STATUSES: readonly CommandStatus[] = [
  'SUCCEEDED',
  'FAILED',
  'REJECTED',
  'EXPIRED',
  'TIMED_OUT',
  'CANCELLED',
];
/** Statuses in which the device has not answered yet. */
export const OPEN_STATUSES: readonly CommandStatus[] = ['QUEUED', 'SENT', 'DELIVERED'];

/** For each target status, the statuses it may be reached from. */
export const ALLOWED_FROM: Readonly<Record<CommandStatus, readonly CommandStatus[]>> = {
  QUEUED: [],
  // SENT → SENT is a re-send on reconnect (bounded by `attempts`).
  SENT: ['QUEUED', 'SENT'],
  DELIVERED: ['QUEUED', 'SENT'],
  SUCCEEDED: ['QUEUED', 'SENT', 'DELIVERED'],
  FAILED: ['QUEUED', 'SENT', 'DELIVERED'],
  REJECTED: ['QUEUED', 'SENT', 'DELIVERED'],
  EXPIRED: ['QUEUED'],
  TIMED_OUT: ['SENT', 'DELIVERED'],
  CANCELLED: ['QUEUED'],
};

export function isTerminal(status: CommandStatus): boolean {
  return TERMINAL_STATUSES.includes(status);
}

export function canTransition(from: CommandStatus, to: CommandStatus): boolean {
  return ALLOWED_FROM[to].includes(from);
}

/** The device's ack status (docs/architecture.md, `devices/{id}/commands/{commandId}/ack`) as a lifecycle status. */
export const ACK_TO_STATUS = {
  accepted: 'DELIVERED',
  succeeded: 'SUCCEEDED',
  failed: 'FAILED',
  rejected: 'REJECTED',
} as const satisfies Record<string, CommandStatus>;

/** `io.kiot.command.<state>`: lower-case, as CloudEvents types in kiot are. */
export function lifecycleEventType(status: CommandStatus): string {
  return `io.kiot.command.${status.toLowerCase()}`;
}

/** Where a device receives a command (docs/architecture.md, MQTT topics). */
export function commandTopic(deviceId: string, commandId: string): string {
  return `devices/${deviceId}/commands/${commandId}`;
}
