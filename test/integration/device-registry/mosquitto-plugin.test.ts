import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';
import pLimit from 'p-limit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintApiKey } from '../../../shared/api-keys.js';
import type { DynsecMosquitto } from '../../support/dynsec-mosquitto.js';
import { startKiotAuthMosquitto } from '../../support/kiot-auth-mosquitto.js';
import { uniqueName } from '../../support/services.js';
import { connectDevice, disconnected, freePort, type Harness, startHarness } from './harness.js';

// Real Mosquitto with the kiot-auth plugin (scripts/mosquitto/kiot-auth/) asking a real registry over HTTP with
// BROKER_ACCESS=hooks: registration writes nothing to the broker, the broker enforces the registry's answer.
describe('Mosquitto with the kiot-auth plugin', () => {
  let h: Harness;
  let broker: DynsecMosquitto;
  const clients: MqttClient[] = [];
  const register = async (id: string) => {
    const response = await h.api('/devices', { body: { id } });
    expect(response.status).toBe(201);
    return {
      secret: ((await response.json()) as { secret: string }).secret,
      etag: response.headers.get('etag')!,
    };
  };
  const connect = async (id: string, secret: string) => {
    const outcome = await connectDevice(broker.url, id, secret);
    if (!outcome.ok) throw new Error(`${id} refused: ${outcome.reason}`);
    clients.push(outcome.client);
    return outcome.client;
  };
  /** The PUBACK's verdict (MQTT 5: reason code 0x87 "Not authorized" when the ACL refuses). */
  const publish = (client: MqttClient, topic: string) =>
    client.publishAsync(topic, 'x', { qos: 1 }).then(
      () => 'ok',
      (error: Error) => error.message,
    );
  /** The SUBACK's granted QoS, or its refusal (mqtt.js rejects a SUBACK with 0x87 "Not authorized"). */
  const subscribe = (client: MqttClient, filter: string) =>
    client.subscribeAsync(filter, { qos: 1 }).then(
      (granted) => granted[0]?.qos,
      (error: Error) => error.message,
    );

  /** A dynsec client with a role of these (acltype, topic) pairs, created with mosquitto_ctrl, connected. */
  const serviceAccount = async (...acls: [string, string][]) => {
    const name = uniqueName('svc');
    const ctrl = (...args: string[]) =>
      promisify(execFile)('mosquitto_ctrl', [
        '-p',
        String(broker.port),
        '-u',
        broker.admin.username,
        '-P',
        broker.admin.password,
        'dynsec',
        ...args,
      ]);
    await ctrl('createRole', name);
    for (const [type, topic] of acls) await ctrl('addRoleACL', name, type, topic, 'allow');
    await ctrl('createClient', name, '-p', 'pw-svc');
    await ctrl('addClientRole', name, name);
    const outcome = await connectDevice(broker.url, name, 'pw-svc', name);
    if (!outcome.ok) throw new Error(outcome.reason);
    clients.push(outcome.client);
    return outcome.client;
  };

  beforeAll(async () => {
    const port = await freePort();
    const brokerKey = await mintApiKey('mosquitto', ['broker:auth']);
    // A 1 s re-check so that the disable test takes seconds; npm start uses 30 s.
    broker = await startKiotAuthMosquitto({
      registryUrl: `http://127.0.0.1:${port}`,
      apiKey: brokerKey.key,
      ttlSeconds: 1,
    });
    h = await startHarness({ broker, port, env: { BROKER_ACCESS: 'hooks' }, keys: [brokerKey.entry] });
  });
  afterAll(async () => {
    for (const client of clients) client.end(true);
    await h?.close();
    await broker?.close();
  });

  it('admits a registered device with its secret to its own topics, and no further', async () => {
    const id = uniqueName('dev');
    const other = uniqueName('dev');
    const { secret } = await register(id);
    const client = await connect(id, secret);
    expect(await subscribe(client, `devices/${id}/commands/#`)).toBe(1);
    const received = new Promise<string>((resolve) => client.once('message', (topic) => resolve(topic)));
    expect(await publish(client, `devices/${id}/commands/reboot`)).toBe('ok');
    expect(await received).toBe(`devices/${id}/commands/reboot`);
    expect(await publish(client, `devices/${id}/telemetry`)).toBe('ok');
    // Another device's topics, wildcards over devices, everything: refused (SUBACK 0x87, PUBACK 0x87).
    expect(await subscribe(client, `devices/${other}/#`)).toMatch(/not authorized/i);
    expect(await subscribe(client, 'devices/+/telemetry')).toMatch(/not authorized/i);
    expect(await subscribe(client, '#')).toMatch(/not authorized/i);
    expect(await publish(client, `devices/${other}/telemetry`)).toMatch(/not authorized/i);
    expect(await publish(client, 'provisioning/requests')).toMatch(/not authorized/i);
  });

  it('checks publishes against the connect answer, without asking the registry per message', async () => {
    const id = uniqueName('dev');
    const { secret } = await register(id);
    let asked = 0;
    const lookup = h.registry.deps.authCache.lookup;
    // Every /broker/authn and /broker/authz answer starts with a cache lookup.
    h.registry.deps.authCache.lookup = (...args) => {
      asked += 1;
      return lookup(...args);
    };
    try {
      const client = await connect(id, secret);
      expect(asked).toBe(1);
      const started = performance.now();
      const results = await Promise.all(
        Array.from({ length: 200 }, (_, i) => publish(client, `devices/${id}/telemetry/${i % 4}`)),
      );
      expect(results.every((result) => result === 'ok')).toBe(true);
      // At most one re-check per ttl (1 s here) on a slow machine; none per message.
      expect(asked - 1).toBeLessThanOrEqual(Math.ceil((performance.now() - started) / 1_000));
    } finally {
      h.registry.deps.authCache.lookup = lookup;
    }
  });

  it('refuses a wrong secret, an unknown device, another client id and a disabled device', async () => {
    const id = uniqueName('dev');
    const { secret, etag } = await register(id);
    expect((await connectDevice(broker.url, id, `${secret}x`)).ok).toBe(false);
    expect((await connectDevice(broker.url, uniqueName('nobody'), secret)).ok).toBe(false);
    expect((await connectDevice(broker.url, id, secret, `${id}-2`)).ok).toBe(false);
    const patch = await h.api(`/devices/${id}`, {
      method: 'PATCH',
      body: { status: 'disabled' },
      headers: { 'if-match': etag },
    });
    expect(patch.status).toBe(200);
    expect((await connectDevice(broker.url, id, secret)).ok).toBe(false);
  });

  it('keeps the service accounts of dynamic security working behind it', async () => {
    const admin = await connectDevice(broker.url, broker.admin.username, broker.admin.password, uniqueName('admin'));
    expect(admin.ok).toBe(true);
    if (!admin.ok) return;
    clients.push(admin.client);
    const id = uniqueName('dev');
    const { secret } = await register(id);
    expect(await subscribe(admin.client, `devices/${id}/#`)).toBe(1);
    const seen = new Promise<string>((resolve) => admin.client.once('message', (topic) => resolve(topic)));
    await publish(await connect(id, secret), `devices/${id}/telemetry`);
    expect(await seen).toBe(`devices/${id}/telemetry`);
  });

  it('queues for a device that is offline with a persistent session, and delivers when it returns', async () => {
    const id = uniqueName('dev');
    const { secret } = await register(id);
    // A persistent session (MQTT 5 §3.1.2.11.2): the broker keeps it, and queues for it, for 300 s offline.
    const options = {
      clean: false,
      properties: { sessionExpiryInterval: 300 },
      clientId: id,
      username: id,
      password: secret,
      protocolVersion: 5 as const,
      reconnectPeriod: 0,
    };
    const first = await mqtt.connectAsync(broker.url, options);
    await first.subscribeAsync(`devices/${id}/commands/#`, { qos: 1 });
    await first.endAsync();
    // A service account in dynamic security that may publish to devices, as command-dispatch's path through the bridge.
    const sender = await serviceAccount(['publishClientSend', 'devices/#']);
    // Mosquitto checks READ for the offline session when it queues the message: it must still be the device's.
    await sender.publishAsync(`devices/${id}/commands/reboot`, 'now', { qos: 1 });
    const second = mqtt.connect(broker.url, options);
    clients.push(second);
    const [topic] = await new Promise<[string]>((resolve) => second.once('message', (t) => resolve([t])));
    expect(topic).toBe(`devices/${id}/commands/reboot`);
  });

  it('cuts off a connected device once it is disabled, within the re-check time', async () => {
    const id = uniqueName('dev');
    const { secret, etag } = await register(id);
    const client = await connect(id, secret);
    expect(await publish(client, `devices/${id}/telemetry`)).toBe('ok');
    const patch = await h.api(`/devices/${id}`, {
      method: 'PATCH',
      body: { status: 'disabled' },
      headers: { 'if-match': etag },
    });
    expect(patch.status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    const gone = disconnected(client);
    // The first check past the re-check time asks the registry, is refused, and the broker disconnects it.
    await publish(client, `devices/${id}/telemetry`);
    await gone;
    expect(client.connected).toBe(false);
  });

  it('lets 1,000 bulk-registered devices connect right after registration', async () => {
    const prefix = uniqueName('bulk');
    const devices = Array.from({ length: 1_000 }, (_, i) => ({ id: `${prefix}-${i}` }));
    const response = await h.api('/devices/bulk', { body: { devices } });
    const result = (await response.json()) as { created: number; results: { id: string; secret: string }[] };
    expect(result.created).toBe(1_000);
    const limit = pLimit(50);
    const outcomes = await Promise.all(
      result.results.map(({ id, secret }) =>
        limit(async () => {
          const outcome = await connectDevice(broker.url, id, secret);
          if (outcome.ok) await outcome.client.endAsync();
          return outcome.ok;
        }),
      ),
    );
    expect(outcomes.filter(Boolean)).toHaveLength(1_000);
  }, 60_000);
});
