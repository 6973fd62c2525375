import { z } from 'zod';
import type { CloudEvent } from '../../shared/cloudevents.js';
import { deviceIdSchema } from '../../shared/devices.js';
import { InvalidInputError } from '../../shared/errors.js';
import { type EventRoute, eventRoute, type HandlerContext } from '../../shared/function-app.js';
import type { DeviceMessage } from './device-steps.js';
import type { IngestOutcome, TelemetryMessage } from './ingest-telemetry.js';
import type { PresenceMessage } from './record-presence.js';
import type { StateMessage } from './report-state.js';
import { EVENT_TYPES, presenceDataSchema } from './schema.js';

export interface EventRouteDeps {
  ingest(message: TelemetryMessage, ctx: HandlerContext): Promise<IngestOutcome>;
  reportState(message: StateMessage, ctx: HandlerContext): Promise<unknown>;
  recordPresence(message: PresenceMessage, ctx: HandlerContext): Promise<void>;
  sweep(ctx: HandlerContext): Promise<number>;
  now(): number;
}

/**
 * The device of a device event is its `subject` (ARCHITECTURE "CloudEvents"). Without a valid one there
 * is no errors topic to tell, so it is a plain 400 to the dead-letter sink.
 */
function deviceMessage(event: CloudEvent<unknown>, now: number): DeviceMessage {
  const subject = deviceIdSchema.safeParse(event.subject);
  if (!subject.success) throw InvalidInputError.fromZod(subject.error, 'the event subject must be a device id');
  const time = event.time === undefined ? Number.NaN : Date.parse(event.time);
  return { eventId: event.id, deviceId: subject.data, receivedAt: new Date(Number.isNaN(time) ? now : time) };
}

/** The data is validated by the use case, so that a refusal reaches the device's errors topic too. */
const anyData = z.unknown();

export function eventRoutes(deps: EventRouteDeps): EventRoute[] {
  const presence = (type: string, signal: PresenceMessage['signal']) =>
    eventRoute({
      type,
      data: presenceDataSchema,
      logLevel: 'debug',
      handle: async (event, _data, ctx) => deps.recordPresence({ ...deviceMessage(event, deps.now()), signal }, ctx),
    });
  return [
    // One device message each: logged at debug, counted in the metrics (a batch is logged per batch).
    eventRoute({
      type: EVENT_TYPES.telemetry,
      data: anyData,
      logLevel: 'debug',
      async handle(event, data, ctx) {
        await deps.ingest({ ...deviceMessage(event, deps.now()), payload: data }, ctx);
      },
    }),
    eventRoute({
      type: EVENT_TYPES.state,
      data: anyData,
      logLevel: 'debug',
      async handle(event, data, ctx) {
        await deps.reportState({ ...deviceMessage(event, deps.now()), patch: data }, ctx);
      },
    }),
    presence(EVENT_TYPES.connected, 'connected'),
    presence(EVENT_TYPES.disconnected, 'disconnected'),
    eventRoute({
      // The PingSource of knative/telemetry-ingest/: the retention sweep in production.
      type: EVENT_TYPES.ping,
      data: anyData,
      async handle(_event, _data, ctx) {
        await deps.sweep(ctx);
      },
    }),
  ];
}
