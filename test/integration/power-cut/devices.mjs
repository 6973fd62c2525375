// Devices for the power-cut test, run inside the stack's network namespace (so plain JavaScript, run by
// node as it is). Registers DEVICES devices with the registry's bulk API, connects each with its own
// credentials, publishes MESSAGES QoS 1 telemetry messages per device (msgId `<device>.<n>`) with up to
// IN_FLIGHT unacknowledged at a time, and prints `ack <device> <msgId>` for every PUBACK, then `done`.
// stdout is a pipe, and pipes are written synchronously on Linux: a line printed is a PUBACK received,
// even if the process is killed the next moment.
import mqtt from 'mqtt';

const env = process.env;
const registry = env.REGISTRY_URL;
const devices = Array.from({ length: Number(env.DEVICES) }, (_, i) => `${env.RUN}-d${i}`);
const messages = Number(env.MESSAGES);
const inFlight = Number(env.IN_FLIGHT ?? 5);
const say = (line) => process.stdout.write(`${line}\n`);

const answer = await fetch(`${registry}/devices/bulk`, {
  method: 'POST',
  headers: { authorization: `Bearer ${env.API_KEY}`, 'content-type': 'application/json' },
  body: JSON.stringify({ devices: devices.map((id) => ({ id, name: `power cut ${id}` })) }),
});
if (!answer.ok) throw new Error(`registration answered ${answer.status}: ${await answer.text()}`);
const { results } = await answer.json();
const secrets = new Map(results.map((result, i) => [devices[i], result.secret]));

const clients = await Promise.all(
  devices.map((id) =>
    mqtt.connectAsync(env.MQTT_URL, {
      clientId: id,
      username: id,
      password: secrets.get(id),
      protocolVersion: 5,
      reconnectPeriod: 0,
    }),
  ),
);
say('ready');

await Promise.all(
  clients.map(async (client, d) => {
    const id = devices[d];
    let next = 0;
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (next < messages) {
          const msgId = `${id}.${next++}`;
          const payload = JSON.stringify({ ts: Date.now(), metrics: { temperature: 20 + (next % 10) }, msgId });
          await client.publishAsync(`devices/${id}/telemetry`, payload, { qos: 1 });
          say(`ack ${id} ${msgId}`);
        }
      }),
    );
  }),
);
say('done');
await Promise.all(clients.map((client) => client.endAsync()));
