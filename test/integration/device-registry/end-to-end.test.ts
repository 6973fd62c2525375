import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBridge, type BridgeHandle } from '../../../bridge/bridge.js';
import { loadBridgeConfig } from '../../../bridge/config.js';
import { createDynsecClient } from '../../../functions/device-registry/dynsec.js';
import { startRouter, routerConfigSchema, type RunningRouter } from '../../../scripts/router/index.js';
import { loadConfig } from '../../../shared/config.js';
import { createLogger } from '../../../shared/logger.js';
import { startDynsecMosquitto, type DynsecMosquitto } from '../../support/dynsec-mosquitto.js';
import { uniqueName } from '../../support/services.js';
import { connectDevice, freePort, startHarness, type Harness } from './harness.js';

const acl = (acltype: string, topic: string) => ({ acltype, topic, allow: true });

// A device holding only the fleet claim credential provisions itself over MQTT: claim client → Mosquitto
// (dynsec) → bridge → router (knative/ Triggers) → device-registry → io.kiot.mqtt.publish → router → bridge →
// provisioning/{requestId}/response; then it connects as itself with what it got.
describe('device-registry self-provisioning end to end (bridge and router)', () => {
  const deadLetters = mkdtempSync(join(tmpdir(), 'kiot-registry-e2e-'));
  const bridgeUser = { username: 'kiot-bridge', password: uniqueName('bridge-pw') };
  const claimUser = { username: 'kiot-fleet-claim', password: uniqueName('claim-pw') };
  let broker: DynsecMosquitto;
  let router: RunningRouter;
  let bridge: BridgeHandle;
  let h: Harness;

  beforeAll(async () => {
    broker = await startDynsecMosquitto();
    // The bridge and fleet-claim clients as scripts/mosquitto/dynsec-config.mjs defines them.
    const control = createDynsecClient({ url: broker.url, username: broker.admin.username, password: broker.admin.password, logger: createLogger('t', 'silent') });
    const answers = await control.send([
      { command: 'createRole', rolename: 'kiot-bridge', acls: ['devices/#', 'provisioning/#'].flatMap((t) => [acl('subscribePattern', `$share/+/${t}`), acl('subscribePattern', t), acl('publishClientReceive', t), acl('publishClientSend', t)]) },
      { command: 'createRole', rolename: 'kiot-fleet-claim', acls: [acl('publishClientSend', 'provisioning/+/request'), acl('subscribePattern', 'provisioning/+/response'), acl('publishClientReceive', 'provisioning/+/response')] },
      { command: 'createClient', ...bridgeUser, roles: [{ rolename: 'kiot-bridge' }] },
      { command: 'createClient', ...claimUser, roles: [{ rolename: 'kiot-fleet-claim' }] },
    ]);
    expect(answers.filter((a) => a.error)).toEqual([]);
    await control.close();

    const [fnPort, bridgePort, routerPort] = [await freePort(), await freePort(), await freePort()];
    router = await startRouter(
      loadConfig(routerConfigSchema, {
        PORT: String(routerPort),
        KNATIVE_DIR: 'knative',
        ROUTER_SERVICES: `device-registry=http://127.0.0.1:${fnPort},mqtt-bridge=http://127.0.0.1:${bridgePort}`,
        ROUTER_DEAD_LETTER_FILE: join(deadLetters, 'dead-letters.jsonl'),
        LOG_LEVEL: 'silent',
      }),
    );
    const ingress = `${router.url}/kiot/default`;
    h = await startHarness({ broker, kSink: ingress, port: fnPort });
    bridge = await startBridge(
      loadBridgeConfig({
        MQTT_URL: broker.url,
        MQTT_USERNAME: bridgeUser.username,
        MQTT_PASSWORD: bridgeUser.password,
        K_SINK: ingress,
        DEAD_LETTER_SINK: h.sink.url,
        PORT: String(bridgePort),
        BRIDGE_CLIENT_ID: uniqueName('reg-bridge'),
        BRIDGE_SESSIONS: '2',
        BRIDGE_SESSION_EXPIRY_S: '60',
        LOG_LEVEL: 'silent',
      }),
      { logger: createLogger('bridge', 'silent') },
    );
    await bridge.ready();
  }, 60_000);

  afterAll(async () => {
    await bridge?.close();
    await router?.close({ drainTimeoutMs: 1_000 });
    await h?.close();
    await broker?.close();
    rmSync(deadLetters, { recursive: true, force: true });
  });

  /** Publishes a claim request as the fleet claim client and waits for the answer on the response topic. */
  async function claim(requestId: string, body: Record<string, unknown>): Promise<Record<string, any>> {
    const outcome = await connectDevice(broker.url, claimUser.username, claimUser.password, uniqueName('claim'));
    if (!outcome.ok) throw new Error(outcome.reason);
    const client: MqttClient = outcome.client;
    try {
      const answer = new Promise<Record<string, any>>((resolve) => client.on('message', (_t, payload) => resolve(JSON.parse(payload.toString()))));
      await client.subscribeAsync(`provisioning/${requestId}/response`, { qos: 1 });
      await client.publishAsync(`provisioning/${requestId}/request`, JSON.stringify(body), { qos: 1 });
      return await answer;
    } finally {
      await client.endAsync();
    }
  }

  it('provisions a device that then connects as itself, and refuses a used-up token with a reason', async () => {
    const created = await h.api('/provisioning-tokens', { body: { maxUses: 1, type: 'thermo', tags: ['e2e'] } });
    const { token } = (await created.json()) as { token: string };
    const requestId = uniqueName('req');
    const reply = await claim(requestId, { claimToken: token, name: 'over-mqtt' });
    expect(reply).toMatchObject({ status: 'accepted', requestId, deviceId: expect.any(String), secret: expect.any(String) });

    const device = await connectDevice(broker.url, reply.deviceId, reply.secret);
    expect(device.ok).toBe(true);
    if (device.ok) {
      await device.client.publishAsync(`devices/${reply.deviceId}/state/reported`, '{"fw":"1.0"}', { qos: 1 });
      await device.client.endAsync();
    }
    expect(await (await h.api(`/devices/${reply.deviceId}`)).json()).toMatchObject({ type: 'thermo', tags: ['e2e'], name: 'over-mqtt' });

    expect(await claim(uniqueName('req'), { claimToken: token })).toMatchObject({ status: 'refused', error: { code: 'used_up' } });
    // The claim credential alone may not touch device topics.
    const claimOnly = await connectDevice(broker.url, claimUser.username, claimUser.password, uniqueName('claim'));
    if (!claimOnly.ok) throw new Error(claimOnly.reason);
    await expect(claimOnly.client.publishAsync(`devices/${reply.deviceId}/telemetry`, '{}', { qos: 1 })).rejects.toMatchObject({ code: 135 });
    await claimOnly.client.endAsync();
  });
});
