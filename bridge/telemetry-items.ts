import { CloudEvent, MQTT } from 'cloudevents';
import {
  asBindingMessage,
  checkData,
  type InboundMessage,
  type MappingOptions,
  TYPES_BY_KIND,
} from './device-events.js';
import { eventIdFor } from './event-id.js';
import { decodeJsonPayload, messageKeyOf } from './payload.js';
import { parseInboundTopic } from './topics.js';

/**
 * A plain telemetry message, ready to travel in an `io.kiot.telemetry.batch` (shared/telemetry-batch.ts):
 * the item as JSON text, and what its single `io.kiot.telemetry.received` event would carry.
 */
export interface TelemetryItem {
  id: string;
  subject: string;
  time: string;
  /** The device's payload as the JSON text it sent. */
  data: string;
  /** `{"id","subject","time","datacontenttype","data"}`, the payload embedded as sent (no re-serialising). */
  json: string;
  /** UTF-8 length of `json`. */
  bytes: number;
}

/** The ISO-8601 form of a receive time, formatted once per millisecond (messages arrive many per ms). */
let lastMs = Number.NaN;
let lastIso = '';
function isoOf(date: Date): string {
  const ms = date.getTime();
  if (ms !== lastMs) {
    lastMs = ms;
    lastIso = date.toISOString();
  }
  return lastIso;
}

const isPlainMessage = (message: InboundMessage) =>
  message.properties === undefined || !MQTT.isEvent(asBindingMessage(message));

/**
 * The batch item of a message, or undefined when it travels on its own: another kind than telemetry, a
 * CloudEvent sent by the device (its extensions are for Trigger filters, which see only a batch's own
 * attributes), or a message the bridge refuses (the single path says why). The same checks and the same
 * deterministic id as the single event (`mapInboundMessage`), so either way a redelivery dedups.
 */
export function telemetryItemOf(message: InboundMessage, options: MappingOptions): TelemetryItem | undefined {
  if (message.payload.length > options.maxPayloadBytes || !message.topic.endsWith('/telemetry')) return undefined;
  const topic = parseInboundTopic(message.topic);
  if (!topic.ok || topic.value.kind !== 'telemetry' || !isPlainMessage(message)) return undefined;
  const decoded = decodeJsonPayload(message.payload);
  if (!decoded.ok || !checkData('telemetry', decoded.value.value).ok) return undefined;
  const subject = topic.value.subject;
  const key = messageKeyOf(decoded.value.value);
  const id = eventIdFor({ ...message, subject, ...(key ? { msgId: key } : {}) });
  const time = isoOf(message.receivedAt);
  const data = decoded.value.text;
  // Ids and subjects are printable ASCII (topics.ts, payload.ts) and the time is ISO-8601: only the id needs
  // escaping in principle, and JSON.stringify does that for it.
  const json = `{"id":${JSON.stringify(id)},"subject":"${subject}","time":"${time}","datacontenttype":"application/json","data":${data}}`;
  return { id, subject, time, data, json, bytes: Buffer.byteLength(json) };
}

/** The single event an item would have been: how it travels when its batch cannot take it. */
export function singleEventOf(item: TelemetryItem, source: string): CloudEvent<unknown> {
  return new CloudEvent<unknown>(
    {
      specversion: '1.0',
      id: item.id,
      type: TYPES_BY_KIND.telemetry[0]!,
      source,
      subject: item.subject,
      time: item.time,
      datacontenttype: 'application/json',
      // JSON text with a JSON content type: the SDK sends it as it is (HTTP binding, binary mode).
      data: item.data,
    },
    false,
  );
}
