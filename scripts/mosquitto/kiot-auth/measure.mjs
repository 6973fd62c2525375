// Against a running `npm start` (KIOT_MQTT_AUTH=hooks): bulk-registers N devices through device-registry's app API
// (1,000 per call, as an operator would), then connects every one of them to the broker with its new secret, which
// the kiot-auth plugin checks with the registry. Prints registration seconds and devices/s, and connects/s.
//   node scripts/mosquitto/kiot-auth/measure.mjs      env: MEASURE_DEVICES (10000), MEASURE_CONCURRENCY (100),
//   MEASURE_PASSES (1; a second pass connects them all again: the registry answers from its Redis cache),
//   KIOT_DATA_DIR (.kiot/dev: api-key.env), MQTT_URL (mqtt://127.0.0.1:1883), REGISTRY_URL (http://127.0.0.1:8101)
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';

const devices = Number(process.env.MEASURE_DEVICES ?? 10_000);
const concurrency = Number(process.env.MEASURE_CONCURRENCY ?? 100);
const dataDir = process.env.KIOT_DATA_DIR ?? '.kiot/dev';
const mqttUrl = process.env.MQTT_URL ?? 'mqtt://127.0.0.1:1883';
const registry = process.env.REGISTRY_URL ?? 'http://127.0.0.1:8101';
const apiKey = /^API_KEY='?([^'\n]+)'?$/m.exec(readFileSync(join(dataDir, 'api-key.env'), 'utf8'))?.[1];
if (!apiKey) throw new Error(`no API_KEY in ${dataDir}/api-key.env`);

const run = `m${Date.now().toString(36)}`;
const credentials = [];
let started = performance.now();
for (let offset = 0; offset < devices; offset += 1_000) {
  const batch = Array.from({ length: Math.min(1_000, devices - offset) }, (_, i) => ({ id: `${run}-${offset + i}` }));
  const response = await fetch(`${registry}/devices/bulk`, {
    method: 'POST',
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ devices: batch }),
  });
  if (response.status !== 200) throw new Error(`bulk: ${response.status} ${await response.text()}`);
  const result = await response.json();
  if (result.created !== batch.length) throw new Error(`bulk created ${result.created} of ${batch.length}`);
  for (const item of result.results) credentials.push([item.id, item.secret]);
}
const registerSeconds = (performance.now() - started) / 1_000;
console.log(
  `registered ${devices} devices with broker credentials in ${registerSeconds.toFixed(2)} s (${(devices / registerSeconds).toFixed(0)}/s)`,
);

/** Connects as the device (CONNACK 0) and disconnects; throws on a refusal. */
const connectOnce = ([id, secret]) =>
  new Promise((resolve, reject) => {
    const client = mqtt.connect(mqttUrl, { clientId: id, username: id, password: secret, reconnectPeriod: 0 });
    client.once('connect', () => client.end(false, {}, resolve));
    client.once('error', (error) => {
      client.end(true);
      reject(new Error(`${id}: ${error.message}`));
    });
  });
for (let pass = 1; pass <= Number(process.env.MEASURE_PASSES ?? 1); pass += 1) {
  started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < credentials.length) await connectOnce(credentials[next++]);
    }),
  );
  const connectSeconds = (performance.now() - started) / 1_000;
  const what = pass === 1 ? 'right after' : `again (pass ${pass})`;
  console.log(
    `connected all ${devices} ${what}, ${concurrency} at a time, in ${connectSeconds.toFixed(2)} s: ${(devices / connectSeconds).toFixed(0)} connects/s`,
  );
}
