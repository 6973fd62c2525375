import { type ChildProcess, spawn } from 'node:child_process';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { type BridgeDeps, type BridgeHandle, startBridge } from '../../../bridge/bridge.js';
import { type BridgeConfig, loadBridgeConfig } from '../../../bridge/config.js';
import { createLogger } from '../../../shared/logger.js';
import { MQTT_URL, uniqueName } from '../../support/services.js';
import type { ReceivedRequest, SinkAnswer, SinkServer } from '../../support/sink-server.js';

export interface TestBridgeOptions {
  mqttUrl?: string;
  sink: SinkServer;
  deadLetter: SinkServer;
  env?: Record<string, string>;
  deps?: BridgeDeps;
}

/** Env for a bridge of its own: a unique client id and share group, fast retries, any free port. */
export function testEnv(options: TestBridgeOptions): Record<string, string> {
  return {
    MQTT_URL: options.mqttUrl ?? MQTT_URL,
    K_SINK: options.sink.url,
    DEAD_LETTER_SINK: options.deadLetter.url,
    PORT: '0',
    BRIDGE_CLIENT_ID: uniqueName('tb'),
    BRIDGE_SHARE_GROUP: uniqueName('g'),
    BRIDGE_SESSIONS: '2',
    RETRY_BASE_MS: '5',
    RETRY_MAX_MS: '50',
    MQTT_RECONNECT_MS: '100',
    DRAIN_TIMEOUT_MS: '5000',
    // Closed test sessions must not keep queuing the shared broker's traffic for long.
    BRIDGE_SESSION_EXPIRY_S: '60',
    LOG_LEVEL: process.env.KIOT_TEST_LOG ?? 'silent',
    ...options.env,
  };
}

export async function startTestBridge(
  options: TestBridgeOptions,
): Promise<{ bridge: BridgeHandle; config: BridgeConfig }> {
  const config = loadBridgeConfig(testEnv(options));
  const bridge = await startBridge(config, { logger: createLogger('bridge', config.LOG_LEVEL), ...options.deps });
  await bridge.ready();
  return { bridge, config };
}

/** A simulated device: a real MQTT client (3.1.1 = protocolVersion 4, or 5). */
export function connectDevice(url: string = MQTT_URL, options: IClientOptions = {}): Promise<MqttClient> {
  return mqtt.connectAsync(url, { protocolVersion: 5, reconnectPeriod: 100, ...options });
}

export interface Collected {
  topic: string;
  payload: Buffer;
  retain: boolean;
  properties?: Record<string, unknown>;
}

/** Subscribes and records what arrives on `filter`. */
export async function collect(client: MqttClient, filter: string): Promise<Collected[]> {
  const got: Collected[] = [];
  client.on('message', (topic, payload, packet) => {
    if (mqttMatch(filter, topic))
      got.push({ topic, payload, retain: packet.retain, properties: packet.properties as Record<string, unknown> });
  });
  await client.subscribeAsync(filter, { qos: 1 });
  return got;
}

function mqttMatch(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i += 1) {
    if (f[i] === '#') return true;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/** Polls a condition (not the clock): resolves as soon as it holds, fails after `timeoutMs`. */
export async function waitUntil(
  condition: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** One device message as the sink got it: a single event, or an item of an `io.kiot.telemetry.batch`. */
export interface Forwarded {
  id: string;
  subject?: string;
  type: string;
  data: unknown;
  time?: string;
}

/** The device messages one request to the sink carried (none if it held no event). */
export function forwarded(request: ReceivedRequest): Forwarded[] {
  const event = request.event;
  if (!event) return [];
  if (event.type === 'io.kiot.telemetry.batch') {
    return (event.data as { id: string; subject: string; time: string; data: unknown }[]).map((item) => ({
      id: item.id,
      subject: item.subject,
      type: 'io.kiot.telemetry.received',
      data: item.data,
      time: item.time,
    }));
  }
  return [{ id: event.id, subject: event.subject, type: event.type, data: event.data, time: event.time }];
}

/** Every device message the sink received, batches opened up, in order. */
export const forwardedIn = (received: ReceivedRequest[]) => received.flatMap(forwarded);

/** Whether a request carries a message of this device (alone or in a batch). */
export const carries = (request: ReceivedRequest, subject: string) =>
  forwarded(request).some((message) => message.subject === subject);

/** The events a sink accepted (2xx answers are recorded after they were decided). */
export const eventsWith = (received: ReceivedRequest[], predicate: (r: ReceivedRequest) => boolean) =>
  received.filter((r) => r.event && predicate(r));

export const json = (value: unknown) => Buffer.from(JSON.stringify(value));

/**
 * A sink whose answers a test changes through `policy`, recording the ids of the device messages it accepted
 * (2xx), each message of a batch by its own id.
 */
export function answering(sink: SinkServer): { policy: (r: ReceivedRequest) => SinkAnswer; accepted: string[] } {
  const control = { policy: (_r: ReceivedRequest): SinkAnswer => ({ status: 202 }), accepted: [] as string[] };
  sink.respond = (request) => {
    const answer = control.policy(request);
    if (answer.status < 300) control.accepted.push(...forwarded(request).map((message) => message.id));
    return answer;
  };
  return control;
}

/** The bundled bridge as production runs it: `node dist/bridge.js`, configured by env only. */
export function spawnBridge(env: Record<string, string>): { child: ChildProcess; url: Promise<string> } {
  const child = spawn(process.execPath, ['dist/bridge.js'], {
    env: { ...process.env, ...env, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const url = new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const port = /"port":(\d+).*"bridge listening"/.exec(output)?.[1];
      if (port) resolve(`http://127.0.0.1:${port}`);
    });
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', (code) => reject(new Error(`bridge exited with ${code}: ${output.slice(-2000)}`)));
  });
  return { child, url };
}

export const healthy = async (url: string) => (await fetch(`${url}/healthz`).catch(() => undefined))?.status === 200;
export const exited = (child: ChildProcess) =>
  new Promise<void>((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', () => resolve())));
