// What a deployable's bundle gets for `cloudevents` (scripts/build.mjs): the package's exports, the SDK loaded on
// the first use of any of them. Its index requires all of it as it loads: the CloudEvent class with uuid (and with
// it node:crypto), the HTTP transport with node:https and TLS, the emitter and every protocol binding. A start uses
// none of it before its first event (the bridge's first message, a function's first CloudEvent): 13 % of a profile
// of the bridge's start (docs/performance.md, "Cold start"). The SDK is loaded whole, through its own index: its
// modules require one another in a cycle (message/http requires the index) that only that order resolves. The
// exports are index.js's (cloudevents 10).
const names = [
  'CloudEvent',
  'V1',
  'V03',
  'ValidationError',
  'emitterFor',
  'Emitter',
  'httpTransport',
  'Mode',
  'HTTP',
  'Kafka',
  'MQTT',
  'MQTTMessageFactory',
  'CONSTANTS',
];
let sdk;
const load = () => {
  sdk ??= require('cloudevents/dist/index.js');
  return sdk;
};
Object.defineProperty(exports, '__esModule', { value: true });
for (const name of names) Object.defineProperty(exports, name, { enumerable: true, get: () => load()[name] });
