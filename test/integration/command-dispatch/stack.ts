import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { type BridgeHandle, startBridge } from '../../../bridge/bridge.js';
import { loadBridgeConfig } from '../../../bridge/config.js';
import { type RunningRouter, routerConfigSchema, startRouter } from '../../../scripts/router/index.js';
import { loadConfig } from '../../../shared/config.js';
import { createLogger } from '../../../shared/logger.js';
import { freePort } from '../../support/mosquitto.js';
import { MQTT_URL, uniqueName } from '../../support/services.js';
import { type SinkServer, startSinkServer } from '../../support/sink-server.js';
import { eventually, type Harness, startHarness } from './harness.js';

/**
 * The whole command path on one machine: command-dispatch → router (reading the real knative/
 * manifests) → bridge → Mosquitto → device, and back. Only the dead-letter Service is a recording sink.
 */
export interface Stack {
  h: Harness;
  bridge: BridgeHandle;
  router: RunningRouter;
  deadLetters: SinkServer;
  close(): Promise<void>;
}

export async function startStack(options: { env?: Record<string, string> } = {}): Promise<Stack> {
  const root = await mkdtemp(join(tmpdir(), 'kiot-cmd-'));
  const deadLetters = await startSinkServer();
  // The router's address must be known before the function and the bridge start (both POST to it).
  const routerPort = await freePort();
  const ingress = `http://127.0.0.1:${routerPort}/kiot/default`;
  const h = await startHarness({ sink: ingress, env: options.env });
  const bridge = await startBridge(
    loadBridgeConfig({
      MQTT_URL,
      K_SINK: ingress,
      DEAD_LETTER_SINK: deadLetters.url,
      PORT: '0',
      BRIDGE_CLIENT_ID: uniqueName('cmdb'),
      // A group of its own: this bridge takes its share of every device message on the shared broker.
      BRIDGE_SHARE_GROUP: uniqueName('cmdg'),
      BRIDGE_SESSIONS: '2',
      RETRY_BASE_MS: '5',
      RETRY_MAX_MS: '50',
      MQTT_RECONNECT_MS: '100',
      DRAIN_TIMEOUT_MS: '2000',
      LOG_LEVEL: 'silent',
    }),
    { logger: createLogger('bridge', 'silent') },
  );
  await bridge.ready();
  const router = await startRouter(
    loadConfig(routerConfigSchema, {
      PORT: String(routerPort),
      KNATIVE_DIR: 'knative',
      ROUTER_SERVICES: `command-dispatch=${h.instances[0]!.base},mqtt-bridge=${bridge.url},dead-letters=${deadLetters.url}`,
      ROUTER_DEAD_LETTER_FILE: join(root, 'dead-letters.jsonl'),
    }),
    { logger: createLogger('router', 'silent') },
  );
  return {
    h,
    bridge,
    router,
    deadLetters,
    async close() {
      await router.close({ drainTimeoutMs: 1_000 });
      await bridge.close();
      await h.close();
      await deadLetters.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}

export interface ReceivedCommand {
  commandId: string;
  name: string;
  params: unknown;
  expiresAt: string;
}

export type Answer = { status: 'succeeded' | 'failed' | 'rejected'; result?: unknown; error?: unknown } | 'silent';

/**
 * A device as docs/architecture.md describes it: subscribes to `devices/{id}/commands/+` (QoS 1), announces
 * itself on `devices/{id}/status` (retained `online`, last will `offline`), acks `accepted` and then its
 * answer on `…/{commandId}/ack`, and handles a command id once (a re-send gets no second ack).
 */
export interface TestDevice {
  id: string;
  client: MqttClient;
  received: ReceivedCommand[];
  /** Goes offline the clean way (retained `offline`) and disconnects. */
  leave(): Promise<void>;
}

export async function connectDevice(id: string, answer: (command: ReceivedCommand) => Answer): Promise<TestDevice> {
  const status = `devices/${id}/status`;
  const client = await mqtt.connectAsync(MQTT_URL, {
    clientId: id,
    protocolVersion: 5,
    reconnectPeriod: 0,
    will: { topic: status, payload: Buffer.from('offline'), qos: 1, retain: true },
  });
  const received: ReceivedCommand[] = [];
  const handled = new Set<string>();
  client.on('message', (topic, payload) => {
    const match = /^devices\/[^/]+\/commands\/([^/]+)$/.exec(topic);
    if (!match) return;
    const commandId = match[1]!;
    const body = JSON.parse(payload.toString('utf8')) as Omit<ReceivedCommand, 'commandId'>;
    received.push({ commandId, ...body });
    if (handled.has(commandId)) return;
    handled.add(commandId);
    const reply = answer({ commandId, ...body });
    if (reply === 'silent') return;
    const ack = `${topic}/ack`;
    void client
      .publishAsync(ack, JSON.stringify({ status: 'accepted' }), { qos: 1 })
      .then(() => client.publishAsync(ack, JSON.stringify(reply), { qos: 1 }));
  });
  await client.subscribeAsync(`devices/${id}/commands/+`, { qos: 1 });
  await client.publishAsync(status, 'online', { qos: 1, retain: true });
  return {
    id,
    client,
    received,
    async leave() {
      await client.publishAsync(status, 'offline', { qos: 1, retain: true });
      await client.endAsync();
    },
  };
}

/** Clears a device's retained status so the shared broker keeps nothing of this run. */
export async function clearRetained(ids: string[]): Promise<void> {
  const client = await mqtt.connectAsync(MQTT_URL, { clientId: uniqueName('cleaner'), protocolVersion: 5 });
  for (const id of ids) await client.publishAsync(`devices/${id}/status`, '', { qos: 1, retain: true });
  await client.endAsync();
}

/** Waits until command-dispatch has recorded the device's presence (the status went through bridge and router). */
export function waitPresence(h: Harness, id: string, online: boolean): Promise<true> {
  return eventually(async () => (await h.instances[0]!.runtime.deps.presence.isOnline(id)) === online || undefined);
}
