import { CloudEvent, type Headers, MQTT } from 'cloudevents';
import { eventIdFor } from './event-id.js';
import { findUnsafeJson, messageKeyOf, msgIdOf, type PayloadCheck, parseJsonPayload, parseStatus } from './payload.js';
import { type InboundKind, type InboundTopic, parseInboundTopic, replyTopicFor } from './topics.js';

/** One PUBLISH as the bridge received it. */
export interface InboundMessage {
  topic: string;
  payload: Buffer;
  qos: number;
  /** Absent for QoS 0. */
  packetId?: number;
  /** The client id of the bridge session it arrived on. */
  sessionId: string;
  receivedAt: Date;
  /** MQTT5 PUBLISH properties (§3.3.2.3); absent for MQTT 3.1.1. */
  properties?: { contentType?: string; userProperties?: Record<string, string | string[]> };
}

export interface Rejection {
  code: string;
  message: string;
  topic: string;
  /** Where the sender hears about it (`devices/{id}/errors`), if the topic names someone. */
  replyTopic?: string;
  subject?: string;
  msgId?: string;
  /** The id the event had or would have had: the dead-letter record's id derives from it. */
  eventId?: string;
  /** When the sink refused the event: its status and answer. */
  sink?: { status: number; body: string };
}

export type Mapped = { ok: true; event: CloudEvent<unknown> } | { ok: false; rejection: Rejection };

export interface MappingOptions {
  /** The CloudEvents `source` of device events: the broker. */
  source: string;
  maxPayloadBytes: number;
}

/** The event types a topic may carry (ARCHITECTURE "CloudEvents"); the first is the default. */
export const TYPES_BY_KIND: Record<InboundKind, readonly string[]> = {
  telemetry: ['io.kiot.telemetry.received'],
  state: ['io.kiot.state.reported'],
  status: ['io.kiot.device.connected', 'io.kiot.device.disconnected'],
  ack: ['io.kiot.command.acknowledged'],
  provisioning: ['io.kiot.provisioning.requested'],
  'job-get': ['io.kiot.job.pending.requested'],
  'job-start-next': ['io.kiot.job.startnext.requested'],
  'job-describe': ['io.kiot.job.execution.requested'],
  'job-update': ['io.kiot.job.execution.update.requested'],
};

const STRUCTURED = 'application/cloudevents+json';

function isJsonMediaType(contentType: string | undefined): boolean {
  if (!contentType) return true;
  const type = contentType.split(';')[0]!.trim().toLowerCase();
  return type === 'application/json' || type.endsWith('+json');
}

/** The MQTT message as the SDK's MQTT binding sees it: user properties are the CE attributes (binary mode). */
export function asBindingMessage(message: InboundMessage) {
  const headers: Headers = {};
  for (const [name, value] of Object.entries(message.properties?.userProperties ?? {})) {
    headers[name] = Array.isArray(value) ? value[value.length - 1] : value;
  }
  const contentType = message.properties?.contentType;
  return {
    PUBLISH: { 'Content Type': contentType },
    headers,
    body: message.payload,
    payload: message.payload,
    'User Properties': headers,
  };
}

/** Checks what a device sends as data: JSON, the shape its topic expects, nothing unsafe (`findUnsafeJson`). */
export function checkData(kind: InboundKind, value: unknown): PayloadCheck<unknown> {
  const isObject = typeof value === 'object' && value !== null && !Array.isArray(value);
  const shapeOk = kind === 'telemetry' ? isObject || (Array.isArray(value) && value.length > 0) : isObject;
  if (!shapeOk) {
    const expected = kind === 'telemetry' ? 'a JSON object or a non-empty array' : 'a JSON object';
    return { ok: false, code: 'invalid_payload', message: `the payload of ${kind} must be ${expected}` };
  }
  const unsafe = findUnsafeJson(value);
  return unsafe.ok ? { ok: true, value } : unsafe;
}

/** Bridge-owned context that goes with every event of a topic: the command or request id. */
function topicContext(topic: InboundTopic, data: unknown): { data: unknown; extensions: Record<string, string> } {
  if (topic.kind === 'ack') {
    // In both places: an extension for Trigger filters, the data for consumers that only read data.
    return { data: { ...(data as object), commandId: topic.commandId }, extensions: { commandid: topic.commandId! } };
  }
  if (topic.kind === 'provisioning')
    return { data: { ...(data as object), requestId: topic.requestId }, extensions: {} };
  if (topic.jobId !== undefined) {
    return { data: { ...(data as object), jobId: topic.jobId }, extensions: { jobid: topic.jobId } };
  }
  return { data, extensions: {} };
}

/**
 * A CloudEvent sent by a device over MQTT 5 (CloudEvents MQTT binding: binary mode with attributes as user
 * properties, or structured mode with content type application/cloudevents+json). It keeps its id, type,
 * time and extensions; `subject` and `source` are always the bridge's (the device id comes from the topic,
 * which the broker's ACL ties to the device, so a device cannot speak for another).
 */
function fromDeviceEvent(message: InboundMessage, topic: InboundTopic, options: MappingOptions): Mapped | undefined {
  const binding = asBindingMessage(message);
  if (!MQTT.isEvent(binding)) return undefined;
  const reject = (code: string, text: string): Mapped => ({
    ok: false,
    rejection: { code, message: text, topic: message.topic },
  });
  let device: Record<string, unknown>;
  let data: unknown;
  // The SDK fills in a missing `time` with its own clock; only a time the device sent is kept.
  let deviceTime: unknown;
  if (binding.PUBLISH['Content Type']?.startsWith(STRUCTURED)) {
    const envelope = parseJsonPayload(message.payload);
    if (!envelope.ok) return reject('invalid_cloudevent', 'the structured CloudEvent is not valid JSON');
    if (typeof envelope.value !== 'object' || envelope.value === null || Array.isArray(envelope.value)) {
      return reject('invalid_cloudevent', 'the structured CloudEvent is not a JSON object');
    }
    device = envelope.value as Record<string, unknown>;
    if (device.data_base64 !== undefined) return reject('unsupported_content_type', 'the event data must be JSON');
    data = device.data;
    deviceTime = device.time;
  } else {
    deviceTime = binding.headers.time;
    try {
      device = { ...(MQTT.toEvent(binding) as unknown as Record<string, unknown>) };
    } catch (error) {
      return reject(
        'invalid_cloudevent',
        `the CloudEvent is invalid: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
    if (!isJsonMediaType(message.properties?.contentType)) {
      return reject('unsupported_content_type', `the event data must be JSON, not ${message.properties?.contentType}`);
    }
    const parsed = parseJsonPayload(message.payload);
    if (!parsed.ok) return reject(parsed.code, parsed.message);
    data = parsed.value;
  }
  const allowed = TYPES_BY_KIND[topic.kind];
  if (typeof device.type !== 'string' || !allowed.includes(device.type)) {
    return reject('type_not_allowed', `${message.topic} carries ${allowed.join(' or ')}, not ${String(device.type)}`);
  }
  if (typeof device.id !== 'string' || device.id.length === 0 || device.id.length > 256) {
    return reject('invalid_cloudevent', 'the CloudEvent id must be a string of 1-256 characters');
  }
  const checked = checkData(topic.kind, data);
  if (!checked.ok) return reject(checked.code, checked.message);
  const context = topicContext(topic, checked.value);
  const { data: _data, data_base64: _b64, datacontenttype: _ct, source: deviceSource, ...attributes } = device;
  try {
    const event = new CloudEvent<unknown>({
      ...attributes,
      ...context.extensions,
      ...(typeof deviceSource === 'string' && deviceSource !== options.source ? { devicesource: deviceSource } : {}),
      specversion: '1.0',
      source: options.source,
      subject: topic.subject,
      time: typeof deviceTime === 'string' ? deviceTime : message.receivedAt.toISOString(),
      datacontenttype: 'application/json',
      data: context.data,
    });
    return { ok: true, event };
  } catch (error) {
    return reject(
      'invalid_cloudevent',
      `the CloudEvent is invalid: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`,
    );
  }
}

/** The event of a plain message: the type from the topic (and for status, from `online`/`offline`). */
function fromPlainMessage(message: InboundMessage, topic: InboundTopic, options: MappingOptions): Mapped {
  const reject = (check: { code: string; message: string }, msgId?: string): Mapped => ({
    ok: false,
    rejection: { code: check.code, message: check.message, topic: message.topic, ...(msgId ? { msgId } : {}) },
  });
  let type: string;
  let data: unknown;
  let msgId: string | undefined;
  if (topic.kind === 'status') {
    const status = parseStatus(message.payload);
    if (!status.ok) return reject(status);
    type = status.value === 'online' ? 'io.kiot.device.connected' : 'io.kiot.device.disconnected';
    data = { status: status.value };
  } else {
    const parsed = parseJsonPayload(message.payload);
    if (!parsed.ok) return reject(parsed);
    msgId = msgIdOf(parsed.value);
    const checked = checkData(topic.kind, parsed.value);
    if (!checked.ok) return reject(checked, msgId);
    type = TYPES_BY_KIND[topic.kind][0]!;
    data = checked.value;
  }
  const context = topicContext(topic, data);
  const key = topic.kind === 'status' ? undefined : messageKeyOf(data);
  const id = eventIdFor({ ...message, subject: topic.subject, ...(key ? { msgId: key } : {}) });
  // Built from checked values only, so the SDK's validation (strict) is skipped on this hot path.
  const event = new CloudEvent<unknown>(
    {
      specversion: '1.0',
      id,
      type,
      source: options.source,
      subject: topic.subject,
      time: message.receivedAt.toISOString(),
      datacontenttype: 'application/json',
      data: context.data,
      ...context.extensions,
    },
    false,
  );
  return { ok: true, event };
}

/** MQTT message → CloudEvent, or the reason it is refused. Pure: no I/O, no clock. */
export function mapInboundMessage(message: InboundMessage, options: MappingOptions): Mapped {
  const mapped = mapUnchecked(message, options);
  if (mapped.ok) return mapped;
  // Every refusal names its sender's reply topic and the id the message would have had.
  const rejection = { ...mapped.rejection };
  rejection.replyTopic ??= replyTopicFor(message.topic);
  rejection.subject ??= message.topic.split('/')[1];
  rejection.eventId ??= eventIdFor({ ...message, subject: rejection.subject ?? '' });
  return { ok: false, rejection };
}

function mapUnchecked(message: InboundMessage, options: MappingOptions): Mapped {
  if (message.payload.length > options.maxPayloadBytes) {
    return {
      ok: false,
      rejection: {
        code: 'payload_too_large',
        message: `the payload is ${message.payload.length} bytes, the limit is ${options.maxPayloadBytes}`,
        topic: message.topic,
      },
    };
  }
  const topic = parseInboundTopic(message.topic);
  if (!topic.ok) return { ok: false, rejection: { ...topic.refusal, topic: message.topic } };
  return fromDeviceEvent(message, topic.value, options) ?? fromPlainMessage(message, topic.value, options);
}
