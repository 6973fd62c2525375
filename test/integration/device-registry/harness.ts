import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import mqtt, { type MqttClient } from 'mqtt';
import { buildRegistry, type Registry } from '../../../functions/device-registry/compose.js';
import { configSchema } from '../../../functions/device-registry/schema.js';
import { type ApiKeyEntry, mintApiKey } from '../../../shared/api-keys.js';
import { loadConfig } from '../../../shared/config.js';
import { createLogger } from '../../../shared/logger.js';
import { createFunctionServer } from '../../../shared/serve.js';
import { type DynsecMosquitto, startDynsecMosquitto } from '../../support/dynsec-mosquitto.js';
import { MONGODB_URL, REDIS_URL, uniqueName } from '../../support/services.js';
import { type SinkServer, startSinkServer } from '../../support/sink-server.js';

export { freePort } from '../../support/ports.js';

/** The registry served by the functions framework over real HTTP, against a private dynsec Mosquitto. */
export interface Harness {
  base: string;
  /** The registry's own database (a unique name per harness). */
  dbName: string;
  broker: DynsecMosquitto;
  sink: SinkServer;
  registry: Registry;
  keys: { admin: string; reader: string; hooks: string };
  /** fetch with the admin key (or `key`) and JSON. */
  api(
    path: string,
    init?: { method?: string; body?: unknown; key?: string | null; headers?: Record<string, string> },
  ): Promise<Response>;
  close(): Promise<void>;
}

export interface HarnessOptions {
  broker?: DynsecMosquitto;
  /** Where events go (default: the harness's own recording sink). */
  kSink?: string;
  port?: number;
  /** More configuration (e.g. OUTBOX_*). */
  env?: Record<string, string>;
  /** More API keys the registry accepts (e.g. the broker's, minted before the broker starts). */
  keys?: ApiKeyEntry[];
}

export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const broker = options.broker ?? (await startDynsecMosquitto());
  const sink = await startSinkServer();
  const admin = await mintApiKey('admin', ['*']);
  const reader = await mintApiKey('reader', ['devices:read']);
  const hooks = await mintApiKey('emqx', ['broker:auth']);
  const dbName = uniqueName('registry')
    .replace(/[^A-Za-z0-9_-]/g, '_')
    .slice(0, 60);
  const config = loadConfig(configSchema, {
    MONGODB_URL,
    MONGODB_DB: dbName,
    REDIS_URL,
    REDIS_PREFIX: `${uniqueName('t')}:`,
    MQTT_URL: broker.url,
    MQTT_USERNAME: broker.admin.username,
    MQTT_PASSWORD: broker.admin.password,
    K_SINK: options.kSink ?? sink.url,
    API_KEYS: JSON.stringify([admin.entry, reader.entry, hooks.entry, ...(options.keys ?? [])]),
    PROVISIONING_REPLY_KEY: randomBytes(32).toString('base64url'),
    ...options.env,
  });
  const registry = buildRegistry(config, createLogger('device-registry', process.env.TEST_LOG_LEVEL ?? 'silent'));
  const server: Server = createFunctionServer(uniqueName('device-registry'), registry.handler);
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    base,
    dbName,
    broker,
    sink,
    registry,
    keys: { admin: admin.key, reader: reader.key, hooks: hooks.key },
    api(path, init = {}) {
      const key = init.key === undefined ? admin.key : init.key;
      return fetch(`${base}${path}`, {
        method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
        headers: {
          ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
          ...(key === null ? {} : { authorization: `Bearer ${key}` }),
          ...init.headers,
        },
        body:
          init.body === undefined ? undefined : typeof init.body === 'string' ? init.body : JSON.stringify(init.body),
      });
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await registry.close();
      await sink.close();
      if (!options.broker) await broker.close();
    },
  };
}

export type ConnectOutcome = { ok: true; client: MqttClient } | { ok: false; reason: string };

/** Connects as a device (MQTT 5), resolving with the client or the refusal; never reconnects on its own. */
export function connectDevice(
  url: string,
  username: string,
  password: string,
  clientId = username,
): Promise<ConnectOutcome> {
  return new Promise((resolve) => {
    const client = mqtt.connect(url, {
      username,
      password,
      clientId,
      reconnectPeriod: 0,
      connectTimeout: 5_000,
      protocolVersion: 5,
    });
    client.once('connect', () => resolve({ ok: true, client }));
    client.once('error', (error) => {
      client.end(true);
      resolve({ ok: false, reason: error.message });
    });
  });
}

/** Resolves when the client is disconnected by the broker (or has been already). */
export function disconnected(client: MqttClient): Promise<void> {
  return new Promise((resolve) => {
    if (!client.connected) return resolve();
    client.once('close', () => resolve());
  });
}
