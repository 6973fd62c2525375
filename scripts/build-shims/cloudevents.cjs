// What a deployable's bundle gets for `cloudevents` (scripts/build.mjs): the package's own exports, each loaded on
// first use. The SDK's index.js requires all of it as it loads: the CloudEvent class with uuid (and with it
// node:crypto), the HTTP transport with node:https and TLS, the emitter and every protocol binding. A start uses
// none of it before its first event (the bridge's first message, a function's first CloudEvent): 13 % of a
// profile of the bridge's start (docs/performance.md, "Cold start"). The exports are index.js's (cloudevents 10).
const modules = {
  CloudEvent: () => require('cloudevents/dist/event/cloudevent').CloudEvent,
  V1: () => require('cloudevents/dist/event/cloudevent').V1,
  V03: () => require('cloudevents/dist/event/cloudevent').V03,
  ValidationError: () => require('cloudevents/dist/event/validation').ValidationError,
  emitterFor: () => require('cloudevents/dist/transport/emitter').emitterFor,
  Emitter: () => require('cloudevents/dist/transport/emitter').Emitter,
  httpTransport: () => require('cloudevents/dist/transport/http').httpTransport,
  Mode: () => require('cloudevents/dist/message').Mode,
  HTTP: () => require('cloudevents/dist/message').HTTP,
  Kafka: () => require('cloudevents/dist/message').Kafka,
  MQTT: () => require('cloudevents/dist/message').MQTT,
  MQTTMessageFactory: () => require('cloudevents/dist/message').MQTTMessageFactory,
  CONSTANTS: () => require('cloudevents/dist/constants').default,
};
Object.defineProperty(exports, '__esModule', { value: true });
for (const [name, load] of Object.entries(modules)) {
  Object.defineProperty(exports, name, { enumerable: true, get: load });
}
