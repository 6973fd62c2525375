import type { IClientPublishOptions } from 'mqtt';
import { z } from 'zod';
import { PayloadTooLargeError } from '../shared/errors.js';
import { type EventRoute, eventRoute } from '../shared/function-app.js';
import type { BridgeMetrics } from './metrics.js';
import type { Publisher } from './publisher.js';
import { isValidPublishTopic } from './topics.js';

export const MQTT_PUBLISH_TYPE = 'io.kiot.mqtt.publish';

const uint32 = z.number().int().min(0).max(4_294_967_295);

/** MQTT5 PUBLISH properties a producer may set (§3.3.2.3); a 3.1.1 connection ignores them. */
const propertiesSchema = z
  .object({
    contentType: z.string().max(256).optional(),
    payloadFormatIndicator: z.boolean().optional(),
    messageExpiryInterval: uint32.optional(),
    responseTopic: z.string().refine(isValidPublishTopic, 'must be a valid topic without wildcards').optional(),
    /** Base64, as binary cannot travel in JSON. */
    correlationData: z.base64().optional(),
    userProperties: z.record(z.string(), z.union([z.string(), z.array(z.string())])).optional(),
  })
  .strict();

/** The `data` of an `io.kiot.mqtt.publish` event (ARCHITECTURE "CloudEvents"). */
export const mqttPublishDataSchema = z
  .object({
    topic: z
      .string()
      .refine(isValidPublishTopic, 'must be a valid publish topic: no wildcards, no $ prefix, not empty'),
    /** A string, or any JSON value (published as JSON). */
    payload: z.json(),
    /** How `payload` becomes bytes. Default: utf8 for a string, json for anything else. */
    encoding: z.enum(['utf8', 'base64', 'json']).optional(),
    qos: z.union([z.literal(0), z.literal(1), z.literal(2)]).default(1),
    retain: z.boolean().default(false),
    properties: propertiesSchema.optional(),
  })
  .superRefine((data, ctx) => {
    const encoding = data.encoding ?? (typeof data.payload === 'string' ? 'utf8' : 'json');
    if (encoding !== 'json' && typeof data.payload !== 'string') {
      ctx.addIssue({ code: 'custom', path: ['payload'], message: `the ${encoding} encoding needs a string payload` });
    }
    if (encoding === 'base64' && !z.base64().safeParse(data.payload).success) {
      ctx.addIssue({ code: 'custom', path: ['payload'], message: 'the payload is not valid base64' });
    }
  });
export type MqttPublishData = z.infer<typeof mqttPublishDataSchema>;

export function payloadBytesOf(data: MqttPublishData): Buffer {
  const encoding = data.encoding ?? (typeof data.payload === 'string' ? 'utf8' : 'json');
  if (encoding === 'json') return Buffer.from(JSON.stringify(data.payload));
  return Buffer.from(data.payload as string, encoding);
}

export function publishOptionsOf(data: MqttPublishData): IClientPublishOptions {
  const { correlationData, ...properties } = data.properties ?? {};
  const mqttProperties = {
    ...properties,
    ...(correlationData ? { correlationData: Buffer.from(correlationData, 'base64') } : {}),
  };
  return {
    qos: data.qos,
    retain: data.retain,
    ...(Object.keys(mqttProperties).length > 0 ? { properties: mqttProperties } : {}),
  };
}

/**
 * CloudEvent → MQTT: publishes and answers only once the broker acknowledged (the Trigger retries a
 * 503 while the broker is away; a 400 or 413 goes to its dead-letter sink).
 */
export function mqttPublishRoute(options: {
  publisher: Publisher;
  maxPayloadBytes: number;
  metrics: BridgeMetrics;
}): EventRoute {
  return eventRoute({
    type: MQTT_PUBLISH_TYPE,
    data: mqttPublishDataSchema,
    async handle(_event, data) {
      const payload = payloadBytesOf(data);
      if (payload.length > options.maxPayloadBytes)
        throw new PayloadTooLargeError(options.maxPayloadBytes, payload.length);
      try {
        await options.publisher.publish(data.topic, payload, publishOptionsOf(data));
        options.metrics.published.inc({ qos: String(data.qos), outcome: 'ok' });
      } catch (error) {
        options.metrics.published.inc({ qos: String(data.qos), outcome: 'failed' });
        throw error;
      }
    },
  });
}
