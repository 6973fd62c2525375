import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll } from 'vitest';
import { createCommandDispatchApp } from '../../../functions/command-dispatch/app.js';
import { commandDispatchConfigSchema } from '../../../functions/command-dispatch/config.js';
import { type CommandRuntime, createCommandRuntime } from '../../../functions/command-dispatch/runtime.js';
import { createApiKeyAuthorizer, mintApiKey } from '../../../shared/api-keys.js';
import { CloudEvent, toBinaryMessage } from '../../../shared/cloudevents.js';
import { loadConfig } from '../../../shared/config.js';
import { DEVICES_COLLECTION, type DeviceDocument } from '../../../shared/devices.js';
import { createLogger } from '../../../shared/logger.js';
import { createMongo, type MongoHandle } from '../../../shared/mongo.js';
import { createFunctionServer } from '../../../shared/serve.js';
import { MONGODB_URL, REDIS_URL, uniqueName } from '../../support/services.js';
import { type SinkServer, startSinkServer } from '../../support/sink-server.js';

/** One command-dispatch instance under the real functions framework, on a port of its own. */
export interface Instance {
  base: string;
  runtime: CommandRuntime;
  server: Server;
}

export interface Harness {
  dbName: string;
  prefix: string;
  mongo: MongoHandle;
  instances: Instance[];
  registerDevice(id: string, status?: 'active' | 'disabled'): Promise<void>;
  /** A new registered device whose connect event the function has taken: commands go out at once. */
  onlineDevice(): Promise<string>;
  apiKey: string;
  request(
    method: string,
    path: string,
    body?: unknown,
    instance?: number,
    headers?: Record<string, string>,
  ): Promise<{ status: number; body: any; headers: Headers }>;
  /** POSTs a CloudEvent to an instance (as a Trigger would) and returns the status. */
  sendEvent(
    input: {
      type: string;
      subject?: string;
      data?: unknown;
      id?: string;
      time?: string;
      extensions?: Record<string, string>;
    },
    instance?: number,
  ): Promise<number>;
  /**
   * Delivers a CloudEvent as the Broker does through an outage: again and again until it is accepted
   * (< 500), recording every answer in `statuses`.
   */
  deliver(input: { type: string; subject: string; data: unknown; id?: string }, statuses: number[]): Promise<number>;
  ack(
    deviceId: string,
    commandId: string,
    status: 'accepted' | 'succeeded' | 'failed' | 'rejected',
    extra?: object,
    id?: string,
    instance?: number,
  ): Promise<number>;
  connected(deviceId: string, at?: Date): Promise<number>;
  disconnected(deviceId: string, at?: Date): Promise<number>;
  close(): Promise<void>;
}

let counter = 0;
/** A name unique to this run that MongoDB accepts as a database name. */
export const dbNameFor = (prefix: string) =>
  uniqueName(prefix)
    .replace(/[^A-Za-z0-9_-]/g, '_')
    .slice(0, 60);

export async function startHarness(options: {
  sink: string;
  instances?: number;
  env?: Record<string, string>;
  /** Another Redis than the shared one (a private topology a test may kill). */
  redisUrl?: string;
}): Promise<Harness> {
  const dbName = dbNameFor('cmd');
  const prefix = `${uniqueName('t')}:`;
  const mongo = createMongo(MONGODB_URL, dbName);
  const instances: Instance[] = [];
  const stops: (() => void)[] = [];
  // Real app API keys: the routes need `commands:read` / `commands:write`.
  const { key, entry } = await mintApiKey('cmd-tester', ['commands:*']);
  for (let i = 0; i < (options.instances ?? 1); i += 1) {
    const config = loadConfig(commandDispatchConfigSchema, {
      MONGODB_URL,
      MONGODB_DB: dbName,
      REDIS_URL: options.redisUrl ?? REDIS_URL,
      K_SINK: options.sink,
      REDIS_KEY_PREFIX: prefix,
      // The shadow hash is telemetry-ingest's layout under a prefix of this run only.
      SHADOW_REDIS_PREFIX: `${prefix}ti`,
      COMMAND_SWEEP_INTERVAL_MS: '0',
      LOG_LEVEL: 'silent',
      API_KEYS: JSON.stringify([entry]),
      ...options.env,
    });
    const runtime = createCommandRuntime(config);
    const logger = createLogger('command-dispatch', config.LOG_LEVEL);
    const handler = createCommandDispatchApp(runtime.deps, {
      logger,
      health: runtime.health,
      authorize: createApiKeyAuthorizer(config.API_KEYS),
    });
    // The framework keeps one registry per process: each instance registers under its own name.
    // As index.ts does: the in-process sweep timer when an interval is configured.
    const stopSweep =
      config.COMMAND_SWEEP_INTERVAL_MS > 0
        ? runtime.startSweepTimer(config.COMMAND_SWEEP_INTERVAL_MS, logger)
        : undefined;
    if (stopSweep) stops.push(stopSweep);
    counter += 1;
    const server = createFunctionServer(`command-dispatch-${process.pid}-${counter}`, handler);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    instances.push({ base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, runtime, server });
  }
  const base = (instance = 0) => instances[instance]!.base;

  const harness: Harness = {
    dbName,
    prefix,
    mongo,
    instances,
    apiKey: key,
    async registerDevice(id, status = 'active') {
      const now = new Date();
      const doc: DeviceDocument = {
        _id: id,
        tags: [],
        metadata: {},
        status,
        credential: { hash: 'x', rotatedAt: now },
        createdAt: now,
        updatedAt: now,
        version: 1,
      };
      await (await mongo.db()).collection<DeviceDocument>(DEVICES_COLLECTION).insertOne(doc);
    },
    async onlineDevice() {
      const id = uniqueName('dev');
      await harness.registerDevice(id);
      const status = await harness.connected(id);
      if (status !== 204) throw new Error(`the connect event of ${id} was answered ${status}`);
      return id;
    },
    async request(method, path, body, instance = 0, headers = {}) {
      const response = await fetch(`${base(instance)}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${key}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...headers,
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await response.text();
      return { status: response.status, body: text ? JSON.parse(text) : undefined, headers: response.headers };
    },
    async deliver(input, statuses) {
      const message = toBinaryMessage(
        new CloudEvent<unknown>({ source: '/test', datacontenttype: 'application/json', id: randomUUID(), ...input }),
      );
      for (;;) {
        const response = await fetch(base(0), { method: 'POST', headers: message.headers, body: message.body });
        await response.arrayBuffer();
        statuses.push(response.status);
        if (response.status < 500) return response.status;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    },
    async sendEvent(input, instance = 0) {
      const event = new CloudEvent<unknown>({
        id: input.id ?? randomUUID(),
        source: '/test',
        type: input.type,
        subject: input.subject,
        time: input.time ?? new Date().toISOString(),
        datacontenttype: 'application/json',
        data: input.data ?? {},
        ...input.extensions,
      });
      const message = toBinaryMessage(event);
      // Like the Broker: a retryable answer (a store slow under load) is delivered again, so tests assert
      // on the outcome of delivery, not on one attempt.
      for (let attempt = 1; ; attempt += 1) {
        const response = await fetch(base(instance), { method: 'POST', headers: message.headers, body: message.body });
        await response.arrayBuffer();
        if (response.status < 500 || attempt >= 5) return response.status;
        await new Promise((resolve) => setTimeout(resolve, 100 * 2 ** attempt));
      }
    },
    // Shaped as the bridge emits it (bridge/device-events.ts): ack payload + commandId, `commandid` extension.
    ack: (deviceId, commandId, status, extra = {}, id, instance) =>
      harness.sendEvent(
        {
          type: 'io.kiot.command.acknowledged',
          subject: deviceId,
          id,
          data: { status, ...extra, commandId },
          extensions: { commandid: commandId },
        },
        instance,
      ),
    connected: (deviceId, at = new Date()) =>
      harness.sendEvent({
        type: 'io.kiot.device.connected',
        subject: deviceId,
        time: at.toISOString(),
        data: { status: 'online' },
      }),
    disconnected: (deviceId, at = new Date()) =>
      harness.sendEvent({
        type: 'io.kiot.device.disconnected',
        subject: deviceId,
        time: at.toISOString(),
        data: { status: 'offline' },
      }),
    async close() {
      for (const stop of stops) stop();
      for (const instance of instances) {
        instance.server.closeAllConnections?.();
        await new Promise<void>((resolve) => instance.server.close(() => resolve()));
        await instance.runtime.close();
      }
      await (await mongo.db()).dropDatabase().catch(() => undefined);
      await mongo.close();
    },
  };
  return harness;
}

/** Waits for a condition by re-checking it (never asserts on elapsed time). */
export async function eventually<T>(
  check: () => Promise<T | undefined | false>,
  timeoutMs = 15_000,
  everyMs = 25,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** A recording K_SINK and a harness on it for the tests of one file: started before them, closed after. */
export function harnessFixture(options: { instances?: number; env?: Record<string, string> } = {}): {
  readonly sink: SinkServer;
  readonly h: Harness;
} {
  const fixture = {} as { sink: SinkServer; h: Harness };
  beforeAll(async () => {
    fixture.sink = await startSinkServer();
    fixture.h = await startHarness({ sink: fixture.sink.url, ...options });
  });
  afterAll(async () => {
    if (fixture.sink) fixture.sink.respond = () => ({ status: 202 });
    await fixture.h?.close();
    await fixture.sink?.close();
  });
  return fixture;
}
