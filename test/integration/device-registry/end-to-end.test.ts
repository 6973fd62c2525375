import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BridgeHandle, startBridge } from '../../../bridge/bridge.js';
import { loadBridgeConfig } from '../../../bridge/config.js';
import { createDynsecClient } from '../../../functions/device-registry/dynsec.js';
import { openCredential, type SealedCredential } from '../../../functions/device-registry/reply-crypto.js';
import { type RunningRouter, routerConfigSchema, startRouter } from '../../../scripts/router/index.js';
import { loadConfig } from '../../../shared/config.js';
import { createLogger } from '../../../shared/logger.js';
import { type DynsecMosquitto, startDynsecMosquitto } from '../../support/dynsec-mosquitto.js';
import { uniqueName } from '../../support/services.js';
import { connectDevice, freePort, type Harness, startHarness } from './harness.js';

/** The roles exactly as scripts/mosquitto/dynsec-config.mjs writes them for the dev stack. */
function stackRoles(dir: string): Map<string, { rolename: string; acls: unknown[] }> {
  const file = join(dir, 'dynamic-security.json');
  const pw = 'x'.repeat(16);
  const env = Object.fromEntries(
    ['DYNSEC_ADMIN', 'REGISTRY_MQTT', 'BRIDGE_MQTT', 'FLEET_CLAIM'].flatMap((p) => [
      [`${p}_USERNAME`, p.toLowerCase()],
      [`${p}_PASSWORD`, pw],
    ]),
  );
  execFileSync(process.execPath, ['scripts/mosquitto/dynsec-config.mjs', file], { env: { ...process.env, ...env } });
  const config = JSON.parse(readFileSync(file, 'utf8')) as { roles: { rolename: string; acls: unknown[] }[] };
  return new Map(config.roles.map((role) => [role.rolename, role]));
}

/** SUBACK reason code of one filter (MQTT 5 §3.9.3: 0x87 = 135 not authorized). */
const suback = (client: MqttClient, filter: string) =>
  client.subscribeAsync(filter, { qos: 1 }).then(
    (granted) => granted[0]!.qos,
    (error: { packet?: { granted?: number[] } }) => error.packet?.granted?.[0] ?? -1,
  );

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
    // The bridge and fleet-claim roles exactly as scripts/mosquitto/dynsec-config.mjs defines them.
    const roles = stackRoles(deadLetters);
    const control = createDynsecClient({
      url: broker.url,
      username: broker.admin.username,
      password: broker.admin.password,
      logger: createLogger('t', 'silent'),
    });
    const answers = await control.send([
      { command: 'createRole', ...roles.get('kiot-bridge')! },
      { command: 'createRole', ...roles.get('kiot-fleet-claim')! },
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

  type Reply = {
    status: string;
    requestId: string;
    deviceId: string;
    credential?: SealedCredential;
    error?: { code: string };
  };
  const connectClaim = async () => {
    const outcome = await connectDevice(broker.url, claimUser.username, claimUser.password, uniqueName('claim'));
    if (!outcome.ok) throw new Error(outcome.reason);
    return outcome.client;
  };

  /** Publishes a claim request as the fleet claim client and waits for the answer on the response topic. */
  async function claim(requestId: string, body: Record<string, unknown>): Promise<Reply> {
    const client = await connectClaim();
    try {
      const answer = new Promise<Reply>((resolve) =>
        client.on('message', (_t, payload) => resolve(JSON.parse(payload.toString()))),
      );
      await client.subscribeAsync(`provisioning/${requestId}/response`, { qos: 1 });
      await client.publishAsync(`provisioning/${requestId}/request`, JSON.stringify(body), { qos: 1 });
      return await answer;
    } finally {
      await client.endAsync();
    }
  }

  it('provisions a device that then connects as itself; another claim holder sees only ciphertext', async () => {
    // A second holder of the shared claim credential listens to everything its role lets it read.
    const eavesdropper = await connectClaim();
    const overheard: { topic: string; payload: string }[] = [];
    eavesdropper.on('message', (topic, payload) => overheard.push({ topic, payload: payload.toString() }));
    expect(await suback(eavesdropper, 'provisioning/+/response')).toBe(1);
    // It can never read requests, where the reply keys travel.
    for (const filter of ['provisioning/+/request', 'provisioning/#', '#'])
      expect(await suback(eavesdropper, filter)).toBe(135);

    const created = await h.api('/provisioning-tokens', { body: { maxUses: 1, type: 'thermo', tags: ['e2e'] } });
    const { token } = (await created.json()) as { token: string };
    const requestId = uniqueName('req');
    const replyKey = randomBytes(32);
    const reply = await claim(requestId, {
      claimToken: token,
      name: 'over-mqtt',
      replyKey: replyKey.toString('base64url'),
    });
    expect(reply).toMatchObject({
      status: 'accepted',
      requestId,
      deviceId: expect.any(String),
      credential: { alg: 'A256GCM' },
    });
    const secret = openCredential(replyKey, requestId, reply.credential!)?.secret;
    expect(secret).toEqual(expect.any(String));

    // The eavesdropper got the very same response, and no secret in it; its own key does not open it.
    const seen = () => overheard.find((m) => m.topic === `provisioning/${requestId}/response`);
    for (let i = 0; i < 400 && !seen(); i += 1) await new Promise((r) => setTimeout(r, 25));
    expect(seen()).toBeDefined();
    expect(seen()!.payload).not.toContain(secret!);
    const stolen = JSON.parse(seen()!.payload) as Reply;
    expect(stolen).not.toHaveProperty('secret');
    expect(openCredential(randomBytes(32), requestId, stolen.credential!)).toBeUndefined();
    expect(overheard.some((m) => m.topic.endsWith('/request'))).toBe(false);
    // Nor does it get the secret by replaying the request id it saw under a key of its own.
    const replayed = await claim(requestId, { claimToken: token, replyKey: randomBytes(32).toString('base64url') });
    expect(replayed).toMatchObject({ status: 'refused', error: { code: 'request_id_used' } });
    expect(JSON.stringify(replayed)).not.toContain(secret!);
    await eavesdropper.endAsync();

    const device = await connectDevice(broker.url, reply.deviceId, secret!);
    expect(device.ok).toBe(true);
    if (device.ok) {
      await device.client.publishAsync(`devices/${reply.deviceId}/state/reported`, '{"fw":"1.0"}', { qos: 1 });
      await device.client.endAsync();
    }
    expect(await (await h.api(`/devices/${reply.deviceId}`)).json()).toMatchObject({
      type: 'thermo',
      tags: ['e2e'],
      name: 'over-mqtt',
    });

    expect(
      await claim(uniqueName('req'), { claimToken: token, replyKey: randomBytes(32).toString('base64url') }),
    ).toMatchObject({ status: 'refused', error: { code: 'used_up' } });
    // A request without a reply key is refused with the reason, over MQTT too.
    expect(await claim(uniqueName('req'), { claimToken: token })).toMatchObject({
      status: 'refused',
      error: { code: 'invalid_request' },
    });
    // The claim credential alone may not touch device topics.
    const claimOnly = await connectClaim();
    await expect(claimOnly.publishAsync(`devices/${reply.deviceId}/telemetry`, '{}', { qos: 1 })).rejects.toMatchObject(
      { code: 135 },
    );
    await claimOnly.endAsync();
  });
});
