import { z } from 'zod';
import { mqttPublishDataSchema } from '../../bridge/publish-route.js';
import { deviceErrorSchema } from '../../bridge/rejections.js';
import { ackEventDataSchema, ackPayloadSchema, devicePayloadSchema } from '../../functions/command-dispatch/schema.js';
import { provisioningRequestSchema } from '../../functions/device-registry/schema.js';
import { getRequestSchema, startNextRequestSchema, updateRequestSchema } from '../../functions/jobs/schema.js';
import { sampleSchema } from '../../functions/telemetry-ingest/schema.js';
import { DEVICE_BATCH_MAX_ITEMS, deviceBatchItemSchema } from '../../shared/device-batch.js';
import { telemetryBatchItemSchema } from '../../shared/telemetry-batch.js';

// The AsyncAPI 3.0 document of kiot's asynchronous contracts: the device-facing MQTT topics (what a device may
// publish and what it receives) and the CloudEvent types (what a producer may send to the Broker and what a
// downstream subscriber receives), generated from the same zod schemas that validate them (`z.toJSONSchema`).
// `npm run asyncapi` writes docs/asyncapi.json; a test checks the committed file is current and valid.

type JsonSchema = Record<string, unknown>;

/** Limits of the defaults (telemetry-ingest's TELEMETRY_MAX_SAMPLES / TELEMETRY_MAX_METRICS). */
const TELEMETRY_LIMITS = { maxSamples: 1_000, maxMetrics: 100 };

const schemas: Record<string, JsonSchema> = {};
/** A zod schema as a component (`$defs` hoisted beside it), referenced by name. */
function component(name: string, schema: z.ZodType, io: 'input' | 'output' = 'input'): { $ref: string } {
  const {
    $schema: _dialect,
    $defs,
    ...rest
  } = z.toJSONSchema(schema, {
    target: 'draft-2020-12',
    io,
    unrepresentable: 'any',
  }) as JsonSchema;
  const rename = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(rename);
    if (value === null || typeof value !== 'object') return value;
    return Object.fromEntries(
      Object.entries(value).map(([key, inner]) =>
        key === '$ref' && typeof inner === 'string' && inner.startsWith('#/$defs/')
          ? [key, `#/components/schemas/${name}_${inner.slice(8)}`]
          : [key, rename(inner)],
      ),
    );
  };
  for (const [def, body] of Object.entries(($defs ?? {}) as Record<string, JsonSchema>))
    schemas[`${name}_${def}`] = rename(body) as JsonSchema;
  schemas[name] = rename(rest) as JsonSchema;
  return { $ref: `#/components/schemas/${name}` };
}

const deviceId = { description: 'the device id (its MQTT username and client id): 1-64 of A-Z a-z 0-9 . _ -' };

interface Topic {
  name: string;
  address: string;
  parameters: Record<string, { description: string }>;
  /** `send`: the device publishes it; `receive`: the device subscribes to it. */
  action: 'send' | 'receive';
  summary: string;
  payload: { $ref: string } | JsonSchema;
  contentType?: string;
}

function deviceTopics(): Topic[] {
  const sample = sampleSchema(TELEMETRY_LIMITS);
  const dev = { deviceId };
  return [
    {
      name: 'telemetry',
      address: 'devices/{deviceId}/telemetry',
      parameters: dev,
      action: 'send',
      summary: 'A sample or a batch of samples (QoS 1; the PUBACK comes once it is stored)',
      payload: component(
        'TelemetryPayload',
        z.union([sample, z.array(sample).min(1).max(TELEMETRY_LIMITS.maxSamples)]),
      ),
    },
    {
      name: 'stateReported',
      address: 'devices/{deviceId}/state/reported',
      parameters: dev,
      action: 'send',
      summary: 'A partial JSON state merged into the shadow (RFC 7386); no non-finite numbers, no prototype keys',
      payload: component('StateReport', z.record(z.string(), z.json())),
    },
    {
      name: 'stateDesired',
      address: 'devices/{deviceId}/state/desired',
      parameters: dev,
      action: 'receive',
      summary: 'The delta between desired and reported (retained; a zero-byte message: nothing left to change)',
      payload: component('StateDelta', z.record(z.string(), z.json())),
    },
    {
      name: 'command',
      address: 'devices/{deviceId}/commands/{commandId}',
      parameters: { ...dev, commandId: { description: 'the command id' } },
      action: 'receive',
      summary: 'A command to run (QoS 1)',
      payload: component('Command', devicePayloadSchema, 'output'),
    },
    {
      name: 'commandAck',
      address: 'devices/{deviceId}/commands/{commandId}/ack',
      parameters: { ...dev, commandId: { description: 'the command id' } },
      action: 'send',
      summary: "The device's answer to a command",
      payload: component('CommandAck', ackPayloadSchema),
    },
    {
      name: 'status',
      address: 'devices/{deviceId}/status',
      parameters: dev,
      action: 'send',
      summary: 'Birth message and last will (retained)',
      payload: { type: 'string', enum: ['online', 'offline'] },
      contentType: 'text/plain',
    },
    {
      name: 'errors',
      address: 'devices/{deviceId}/errors',
      parameters: dev,
      action: 'receive',
      summary: 'Why a message of the device was refused (by the bridge or a consumer)',
      payload: component('DeviceError', deviceErrorSchema, 'output'),
    },
    {
      name: 'jobsGet',
      address: 'devices/{deviceId}/jobs/get',
      parameters: dev,
      action: 'send',
      summary: 'Ask for the pending executions (answer on …/accepted or …/rejected)',
      payload: component('JobsGetRequest', getRequestSchema),
    },
    {
      name: 'jobsStartNext',
      address: 'devices/{deviceId}/jobs/start-next',
      parameters: dev,
      action: 'send',
      summary: 'Start the next pending execution',
      payload: component('JobsStartNextRequest', startNextRequestSchema),
    },
    {
      name: 'jobGet',
      address: 'devices/{deviceId}/jobs/{jobId}/get',
      parameters: { ...dev, jobId: { description: 'the job id' } },
      action: 'send',
      summary: 'Read one execution',
      payload: component('JobsGetRequest', getRequestSchema),
    },
    {
      name: 'jobUpdate',
      address: 'devices/{deviceId}/jobs/{jobId}/update',
      parameters: { ...dev, jobId: { description: 'the job id' } },
      action: 'send',
      summary: "Report an execution's progress or outcome",
      payload: component('JobsUpdateRequest', updateRequestSchema),
    },
    {
      name: 'jobsReply',
      address: 'devices/{deviceId}/jobs/{request}/{outcome}',
      parameters: {
        ...dev,
        request: { description: 'the request topic after jobs/: get, start-next, <jobId>/get, <jobId>/update' },
        outcome: { description: 'accepted or rejected' },
      },
      action: 'receive',
      summary: "The answer to a job request (AWS IoT Jobs' device API)",
      payload: { type: 'object' },
    },
    {
      name: 'jobsNotify',
      address: 'devices/{deviceId}/jobs/{notification}',
      parameters: { ...dev, notification: { description: 'notify (the pending executions) or notify-next' } },
      action: 'receive',
      summary: 'The pending executions changed; the next execution (`{}` when none is left)',
      payload: { type: 'object' },
    },
    {
      name: 'provisioningRequest',
      address: 'provisioning/{requestId}/request',
      parameters: { requestId: { description: 'a fresh id the device chooses' } },
      action: 'send',
      summary: 'Self-registration with a fleet claim token',
      payload: component('ProvisioningRequest', provisioningRequestSchema),
    },
    {
      name: 'provisioningResponse',
      address: 'provisioning/{requestId}/response',
      parameters: { requestId: { description: 'the id of the request' } },
      action: 'receive',
      summary: "The new device's id and credential (sealed with the request's replyKey), or an error",
      payload: { type: 'object' },
    },
  ];
}

/** CloudEvent types on the Broker: what a downstream subscriber receives (and kiot's producers send). */
function cloudEventTypes(): { type: string; summary: string; data: { $ref: string } | JsonSchema }[] {
  const anyJson = { description: 'see docs/architecture.md' };
  return [
    {
      type: 'io.kiot.telemetry.received',
      summary: 'A device message on devices/{id}/telemetry (subject: the device id)',
      data: component(
        'TelemetryPayload',
        z.union([sampleSchema(TELEMETRY_LIMITS), z.array(sampleSchema(TELEMETRY_LIMITS))]),
      ),
    },
    {
      type: 'io.kiot.telemetry.batch',
      summary: 'Many device messages in one event (docs/telemetry-batch.md); each item is what one event would be',
      data: component('TelemetryBatch', z.array(telemetryBatchItemSchema).min(1)),
    },
    {
      type: 'io.kiot.state.reported',
      summary: 'A device state report',
      data: component('StateReport', z.record(z.string(), z.json())),
    },
    { type: 'io.kiot.device.connected', summary: 'A device came online (subject: the device id)', data: anyJson },
    { type: 'io.kiot.device.disconnected', summary: 'A device went offline', data: anyJson },
    {
      type: 'io.kiot.command.acknowledged',
      summary: "A device's command ack",
      data: component('CommandAckEvent', ackEventDataSchema),
    },
    {
      type: 'io.kiot.provisioning.requested',
      summary: 'A provisioning request',
      data: component('ProvisioningRequest', provisioningRequestSchema),
    },
    {
      type: 'io.kiot.mqtt.publish',
      summary: 'A function asks the bridge to publish to a device (cluster-local; kiot producers only)',
      data: component('MqttPublish', mqttPublishDataSchema),
    },
    ...['pending', 'startnext', 'execution', 'execution.update'].map((kind) => ({
      type: `io.kiot.job.${kind}.requested`,
      summary: 'A device job request, forwarded by the bridge',
      data: anyJson,
    })),
    ...['registered', 'updated', 'deleted'].map((what) => ({
      type: `io.kiot.device.${what}`,
      summary: `A device was ${what} in the registry`,
      data: anyJson,
    })),
    {
      type: 'io.kiot.device.registered.batch',
      summary:
        'The devices of one bulk registration (shared/device-batch.ts); each item is what its io.kiot.device.registered would be',
      data: component('DeviceRegisteredBatch', z.array(deviceBatchItemSchema).min(1).max(DEVICE_BATCH_MAX_ITEMS)),
    },
    ...['queued', 'sent', 'delivered', 'succeeded', 'failed', 'rejected', 'expired', 'timed_out', 'cancelled'].map(
      (status) => ({ type: `io.kiot.command.${status}`, summary: `A command became ${status}`, data: anyJson }),
    ),
    { type: 'io.kiot.alert.raised', summary: 'An alert rule fired', data: anyJson },
    { type: 'io.kiot.alert.cleared', summary: 'An alert cleared', data: anyJson },
    { type: 'io.kiot.report.generated', summary: 'A report is ready (links)', data: anyJson },
  ];
}

const key = (type: string) =>
  type.replace(/^io\.kiot\./, '').replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ?? '').toUpperCase());

export function asyncApiDocument() {
  for (const name of Object.keys(schemas)) delete schemas[name];
  const channels: Record<string, unknown> = {};
  const operations: Record<string, unknown> = {};
  const messages: Record<string, unknown> = {};
  for (const topic of deviceTopics()) {
    messages[topic.name] = {
      name: topic.name,
      summary: topic.summary,
      contentType: topic.contentType ?? 'application/json',
      payload: topic.payload,
    };
    channels[topic.name] = {
      address: topic.address,
      parameters: topic.parameters,
      messages: { [topic.name]: { $ref: `#/components/messages/${topic.name}` } },
      bindings: { mqtt: { bindingVersion: '0.2.0' } },
    };
    operations[
      `${topic.action === 'send' ? 'device' : 'toDevice'}${topic.name[0]!.toUpperCase()}${topic.name.slice(1)}`
    ] = {
      // From the device's point of view: it publishes (`send`) or subscribes (`receive`).
      action: topic.action,
      channel: { $ref: `#/channels/${topic.name}` },
      summary: topic.summary,
      messages: [{ $ref: `#/channels/${topic.name}/messages/${topic.name}` }],
    };
  }
  const ceMessages: Record<string, { $ref: string }> = {};
  for (const event of cloudEventTypes()) {
    const name = `ce_${key(event.type)}`;
    messages[name] = {
      name: event.type,
      summary: event.summary,
      contentType: 'application/json',
      headers: { $ref: '#/components/schemas/CloudEventAttributes' },
      payload: event.data,
      'x-cloudevents-type': event.type,
    };
    ceMessages[name] = { $ref: `#/components/messages/${name}` };
  }
  schemas.CloudEventAttributes = {
    type: 'object',
    description: 'CloudEvents 1.0 attributes (HTTP binary mode: ce-* headers); ce-type names the message',
    properties: {
      'ce-specversion': { const: '1.0' },
      'ce-id': { type: 'string' },
      'ce-source': { type: 'string' },
      'ce-type': { type: 'string' },
      'ce-subject': { type: 'string' },
      'ce-time': { type: 'string', format: 'date-time' },
    },
    required: ['ce-specversion', 'ce-id', 'ce-source', 'ce-type'],
  };
  channels.broker = {
    address: '/kiot/default',
    title: 'The Knative Broker kiot/default',
    description:
      'Every CloudEvent of kiot. Producers need a workload token the broker-producers EventPolicy allows; ' +
      'subscribers are Triggers (filter by type).',
    messages: ceMessages,
    bindings: { http: { bindingVersion: '0.3.0' } },
  };
  operations.subscribeToEvents = {
    action: 'receive',
    channel: { $ref: '#/channels/broker' },
    summary: 'A downstream subscriber (a Trigger) receives these CloudEvents',
    messages: Object.keys(ceMessages).map((name) => ({ $ref: `#/channels/broker/messages/${name}` })),
  };
  operations.publishEvents = {
    action: 'send',
    channel: { $ref: '#/channels/broker' },
    summary: "kiot's producers (the bridge, the functions) send these to the Broker",
    messages: Object.keys(ceMessages).map((name) => ({ $ref: `#/channels/broker/messages/${name}` })),
  };
  return {
    asyncapi: '3.0.0',
    info: {
      title: 'kiot devices and events',
      version: '1.0.0',
      description:
        'The MQTT topics a device publishes and subscribes to (per-device credentials; the broker allows a device ' +
        'only its own topics), and the CloudEvent types on the Broker. Generated from the zod schemas that validate them.',
    },
    defaultContentType: 'application/json',
    servers: {
      mqtt: { host: 'mosquitto.kiot.svc.cluster.local:1883', protocol: 'mqtt', protocolVersion: '5' },
      broker: {
        host: 'broker-ingress.knative-eventing.svc.cluster.local',
        protocol: 'http',
        pathname: '/kiot/default',
      },
    },
    channels,
    operations,
    components: { schemas: { ...schemas }, messages },
  };
}
