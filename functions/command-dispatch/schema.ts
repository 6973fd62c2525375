import { z } from 'zod';
import { deviceIdSchema } from '../../shared/devices.js';
import { COMMAND_STATUSES } from './lifecycle.js';

/** The longest a synchronous caller may hold a request (Azure IoT Hub direct methods allow 300 s too). */
export const MAX_WAIT_SECONDS = 300;

export const commandIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9_.:-]{1,128}$/, 'use 1-128 of A-Z a-z 0-9 _ . : - (the bridge accepts the same in a topic)');
export const commandNameSchema = z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'use 1-64 of A-Z a-z 0-9 _ . : -');

/** `POST /devices/{id}/commands`. Defaults for TTL and timeout come from config. */
export const createCommandBodySchema = z
  .object({
    name: commandNameSchema,
    params: z.unknown().optional(),
    /** How long the command may wait for the device (queued or unanswered) before EXPIRED. */
    ttlSeconds: z
      .number()
      .int()
      .min(1)
      .max(7 * 24 * 3600)
      .optional(),
    /** How long after a send the device has to answer before TIMED_OUT. */
    timeoutSeconds: z.number().int().min(1).max(3600).optional(),
    /** `true` waits up to `timeoutSeconds` (capped at 300); a number waits that many seconds. */
    wait: z.union([z.boolean(), z.number().int().min(0).max(MAX_WAIT_SECONDS)]).optional(),
  })
  .strict();
export type CreateCommandBody = z.infer<typeof createCommandBodySchema>;

/** `Idempotency-Key` on `POST /devices/{id}/commands`: a retry with the same key for the same device gets the
 * command the first request created instead of a second one. */
export { idempotencyKeySchema } from '../../shared/idempotency-key.js';

export const commandStatusSchema = z.enum(COMMAND_STATUSES);

/** A command as the API answers it and as `io.kiot.command.<state>` events carry it. */
export const commandViewSchema = z.object({
  id: commandIdSchema,
  deviceId: deviceIdSchema,
  name: commandNameSchema,
  params: z.unknown(),
  status: commandStatusSchema,
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
  expiresAt: z.iso.datetime(),
  timeoutSeconds: z.number().int(),
  /** Set once sent: no answer by then means TIMED_OUT. */
  deadlineAt: z.iso.datetime().optional(),
  attempts: z.number().int(),
  result: z.unknown().optional(),
  error: z.unknown().optional(),
  history: z.array(
    z.object({ status: commandStatusSchema, at: z.iso.datetime(), attempt: z.number().int().optional() }),
  ),
});

export const commandPageSchema = z.object({ items: z.array(commandViewSchema), nextCursor: z.string().optional() });

/** `GET /command-summary`: commands waiting for their device, by status. */
export const commandSummarySchema = z.object({
  inFlight: z.number().int(),
  byStatus: z.object({ QUEUED: z.number().int(), SENT: z.number().int(), DELIVERED: z.number().int() }),
});

/** 504 of a synchronous call: the device did not answer in time; the command is still tracked. */
export const deviceTimeoutSchema = z.object({
  error: z.object({
    code: z.literal('device_timeout'),
    message: z.string(),
    details: z.object({ commandId: commandIdSchema }),
  }),
  command: commandViewSchema,
});

/** The desired side of a device shadow, as `GET`/`PATCH /devices/{id}/state/desired` answer it. */
export const desiredStateViewSchema = z.object({
  deviceId: deviceIdSchema,
  desired: z.record(z.string(), z.unknown()),
  reported: z.record(z.string(), z.unknown()),
  delta: z.record(z.string(), z.unknown()),
  version: z.number().int(),
  /** When each leaf was last set (epoch ms), per side. */
  timestamps: z.object({
    reported: z.record(z.string(), z.number()),
    desired: z.record(z.string(), z.number()),
  }),
});

/** A JSON merge patch (RFC 7386) of the desired state: an object; `null` members remove keys. */
export const statePatchSchema = z.record(z.string(), z.unknown());

/** `GET /devices/{id}/commands?status=QUEUED,SENT&limit=50&cursor=…` */
export const listQuerySchema = z.object({
  status: z
    .string()
    .transform((value) =>
      value
        .split(',')
        .map((s) => s.trim().toUpperCase())
        .filter(Boolean),
    )
    .pipe(z.array(commandStatusSchema).min(1))
    .optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
  cursor: z.string().max(512).optional(),
});
export type ListQuery = z.infer<typeof listQuerySchema>;

/** The payload published to `devices/{id}/commands/{commandId}` (docs/architecture.md). */
export const devicePayloadSchema = z.object({ name: z.string(), params: z.unknown(), expiresAt: z.string() });
export type DevicePayload = z.infer<typeof devicePayloadSchema>;

/** The ack a device publishes on `devices/{id}/commands/{commandId}/ack` (docs/architecture.md). */
export const ackPayloadSchema = z.object({
  status: z.enum(['accepted', 'succeeded', 'failed', 'rejected']),
  result: z.unknown().optional(),
  error: z.unknown().optional(),
});

/**
 * `data` of `io.kiot.command.acknowledged` as the bridge emits it: the ack payload plus where it came
 * from. The command id is taken from `data.commandId`, else from the topic; the device id from
 * `data.deviceId`, else the event subject (see `ackOf`).
 */
export const ackEventDataSchema = ackPayloadSchema.extend({
  commandId: commandIdSchema.optional(),
  deviceId: deviceIdSchema.optional(),
  topic: z.string().optional(),
});
export type AckEventData = z.infer<typeof ackEventDataSchema>;

/** `data` of `io.kiot.device.connected|disconnected`: whatever the bridge adds, the subject is the device. */
export const presenceEventDataSchema = z
  .object({ deviceId: deviceIdSchema.optional(), at: z.union([z.string(), z.number()]).optional() })
  .passthrough()
  .nullish();

/**
 * `dev.knative.sources.ping` from our PingSource (knative/command-dispatch/ping-source.yaml): the data
 * names the task (as the `kiottask` extension does for the Trigger), so a tick meant for another
 * function's task is refused instead of run.
 */
export const pingDataSchema = z.object({ task: z.string().optional() }).passthrough().nullish();

/** Where `io.kiot.command.acknowledged` names the command: data first, then the MQTT topic. */
export function ackOf(data: AckEventData, subject: string | undefined): { commandId?: string; deviceId?: string } {
  const fromTopic = data.topic ? /^devices\/([^/]+)\/commands\/([^/]+)\/ack$/.exec(data.topic) : null;
  return {
    commandId: data.commandId ?? fromTopic?.[2],
    deviceId: data.deviceId ?? fromTopic?.[1] ?? subject,
  };
}
