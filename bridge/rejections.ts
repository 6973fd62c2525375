import { CloudEvent } from 'cloudevents';
import { z } from 'zod';
import type { InboundMessage, Rejection } from './device-events.js';

export const REJECTED_TYPE = 'io.kiot.bridge.rejected';

/** What a device reads on `devices/{id}/errors` (and a provisioning device on its response topic). */
export const deviceErrorSchema = z.object({
  code: z.string(),
  message: z.string(),
  topic: z.string(),
  msgId: z.string().optional(),
});
export type DeviceError = z.infer<typeof deviceErrorSchema>;

/** The `data` of an `io.kiot.bridge.rejected` dead-letter record. */
export const deadLetterDataSchema = z.object({
  reason: z.object({
    code: z.string(),
    message: z.string(),
    sinkStatus: z.number().int().optional(),
    sinkAnswer: z.string().optional(),
  }),
  topic: z.string(),
  qos: z.number().int(),
  packetId: z.number().int().optional(),
  sessionId: z.string(),
  receivedAt: z.string(),
  /** The id the event had (sink refusals) or would have had. */
  eventId: z.string().optional(),
  contentType: z.string().optional(),
  payloadBase64: z.string(),
  payloadBytes: z.number().int(),
  /** Only the first `TRUNCATED_PAYLOAD_BYTES` of an oversize payload are kept. */
  truncated: z.boolean(),
});
export type DeadLetterData = z.infer<typeof deadLetterDataSchema>;

/** What a dead-letter record keeps of a payload that was refused for its size: enough to recognise it. */
export const TRUNCATED_PAYLOAD_BYTES = 4096;
const SINK_ANSWER_CHARS = 1024;

export function deviceErrorOf(rejection: Rejection): DeviceError {
  return {
    code: rejection.code,
    message: rejection.message,
    topic: rejection.topic,
    ...(rejection.msgId ? { msgId: rejection.msgId } : {}),
  };
}

/** The reply for a provisioning device, in the problem shape every kiot error body has (STYLE "Errors"). */
export function replyPayloadOf(rejection: Rejection): Buffer {
  const error = deviceErrorOf(rejection);
  const body = rejection.replyTopic?.startsWith('provisioning/') ? { error } : error;
  return Buffer.from(JSON.stringify(body));
}

/**
 * The dead-letter record of a refused message: a CloudEvent whose id derives from the message's event id,
 * so a record written twice (the bridge crashed before the PUBACK) is recognisably the same record.
 */
export function deadLetterEventOf(
  message: InboundMessage,
  rejection: Rejection,
  options: { source: string; maxPayloadBytes: number },
): CloudEvent<DeadLetterData> {
  const truncated = message.payload.length > options.maxPayloadBytes;
  const kept = truncated ? message.payload.subarray(0, TRUNCATED_PAYLOAD_BYTES) : message.payload;
  const data: DeadLetterData = {
    reason: {
      code: rejection.code,
      message: rejection.message,
      ...(rejection.sink
        ? { sinkStatus: rejection.sink.status, sinkAnswer: rejection.sink.body.slice(0, SINK_ANSWER_CHARS) }
        : {}),
    },
    topic: message.topic,
    qos: message.qos,
    ...(message.packetId !== undefined ? { packetId: message.packetId } : {}),
    sessionId: message.sessionId,
    receivedAt: message.receivedAt.toISOString(),
    ...(rejection.eventId ? { eventId: rejection.eventId } : {}),
    ...(message.properties?.contentType ? { contentType: message.properties.contentType } : {}),
    payloadBase64: kept.toString('base64'),
    payloadBytes: message.payload.length,
    truncated,
  };
  return new CloudEvent<DeadLetterData>({
    specversion: '1.0',
    id: `${rejection.eventId ?? `${message.sessionId}-${message.packetId ?? 'q0'}`}:rejected`,
    type: REJECTED_TYPE,
    source: options.source,
    ...(rejection.subject ? { subject: rejection.subject } : {}),
    time: message.receivedAt.toISOString(),
    datacontenttype: 'application/json',
    data,
    reasoncode: rejection.code.replace(/[^a-z0-9]/g, ''),
  });
}
