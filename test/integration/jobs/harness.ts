import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createJobsApp } from '../../../functions/jobs/app.js';
import { jobsConfigSchema } from '../../../functions/jobs/config.js';
import { JOB_REQUEST_TYPES } from '../../../functions/jobs/device-topics.js';
import { createJobsRuntime, type JobsRuntime } from '../../../functions/jobs/runtime.js';
import { createApiKeyAuthorizer, mintApiKey } from '../../../shared/api-keys.js';
import { CloudEvent, toBinaryMessage } from '../../../shared/cloudevents.js';
import { loadConfig } from '../../../shared/config.js';
import { DEVICES_COLLECTION, type DeviceDocument } from '../../../shared/devices.js';
import { createLogger } from '../../../shared/logger.js';
import { createMongo, type MongoHandle } from '../../../shared/mongo.js';
import { hashSecret } from '../../../shared/secrets.js';
import { createFunctionServer } from '../../../shared/serve.js';
import { MONGODB_URL, uniqueName } from '../../support/services.js';
import { type SinkServer, startSinkServer } from '../../support/sink-server.js';

/** A clock the test moves by hand: rollout rates, windows and timeouts are checked without waiting. */
export interface TestClock {
  now: Date;
  advance(ms: number): void;
}

export interface Instance {
  base: string;
  runtime: JobsRuntime;
  server: Server;
}

/** What a device got over MQTT, as the sink saw the `io.kiot.mqtt.publish` events. */
export interface Published {
  topic: string;
  payload: any;
}

export interface DeviceSpec {
  id: string;
  type?: string;
  tags?: string[];
  metadata?: Record<string, unknown>;
  status?: 'active' | 'disabled';
  secret?: string;
}

export interface JobsHarness {
  clock: TestClock;
  sink: SinkServer;
  mongo: MongoHandle;
  instances: Instance[];
  apiKey: string;
  /** A prefix for this test's ids: device and job ids of a file never collide with another's. */
  id(name: string): string;
  addDevices(devices: DeviceSpec[]): Promise<void>;
  request(
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
    instance?: number,
  ): Promise<{
    status: number;
    body: any;
    headers: Headers;
  }>;
  sendEvent(
    input: { type: string; subject?: string; data?: unknown; extensions?: Record<string, string> },
    instance?: number,
  ): Promise<number>;
  /** A device request, shaped as the bridge emits it (bridge/device-events.ts). */
  deviceRequest(
    deviceId: string,
    request: keyof typeof JOB_REQUEST_TYPES,
    payload?: Record<string, unknown>,
    jobId?: string,
    instance?: number,
  ): Promise<number>;
  /** One scheduler pass on an instance, at the test clock's time. */
  pass(instance?: number): Promise<{ live: number }>;
  /** Messages published to one device (in order), optionally on topics ending with `suffix`. */
  published(deviceId: string, suffix?: string): Published[];
  /** Waits until a device got a message on a topic ending with `suffix` (after `after` messages). */
  waitFor(deviceId: string, suffix: string, after?: number): Promise<Published>;
  close(): Promise<void>;
}

let counter = 0;

export async function startJobsHarness(
  options: { instances?: number; env?: Record<string, string> } = {},
): Promise<JobsHarness> {
  const dbName = uniqueName('jobs')
    .replace(/[^A-Za-z0-9_-]/g, '_')
    .slice(0, 60);
  const prefix = uniqueName('j').replace(/[^A-Za-z0-9_-]/g, '_');
  const mongo = createMongo(MONGODB_URL, dbName);
  const sink = await startSinkServer();
  const clock: TestClock = {
    now: new Date('2030-01-01T00:00:00Z'),
    advance(ms) {
      clock.now = new Date(clock.now.getTime() + ms);
    },
  };
  const { key, entry } = await mintApiKey('jobs-tester', ['jobs:*', 'artifacts:*']);
  const instances: Instance[] = [];
  for (let i = 0; i < (options.instances ?? 1); i += 1) {
    const config = loadConfig(jobsConfigSchema, {
      MONGODB_URL,
      MONGODB_DB: dbName,
      K_SINK: sink.url,
      JOBS_TICK_INTERVAL_MS: '0',
      LOG_LEVEL: 'silent',
      API_KEYS: JSON.stringify([entry]),
      JOBS_PUBLIC_URL: 'http://jobs.test',
      ...options.env,
    });
    const runtime = createJobsRuntime(config, { clock: () => clock.now });
    await runtime.ensureIndexes();
    const logger = createLogger('jobs', config.LOG_LEVEL);
    const handler = createJobsApp(runtime.deps, runtime.scheduler, runtime.devices, {
      logger,
      health: runtime.health,
      authorize: createApiKeyAuthorizer(config.API_KEYS),
    });
    counter += 1;
    const server = createFunctionServer(`jobs-${process.pid}-${counter}`, handler);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    instances.push({ base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, runtime, server });
  }
  const base = (instance = 0) => instances[instance]!.base;
  const logger = createLogger('jobs-test', 'silent');

  const publishes = (): (Published & { deviceId: string })[] =>
    sink.received
      .filter((r) => r.event?.type === 'io.kiot.mqtt.publish')
      .map((r) => {
        const data = r.event!.data as { topic: string; payload: unknown };
        return { deviceId: r.event!.subject ?? '', topic: data.topic, payload: data.payload };
      });

  const harness: JobsHarness = {
    clock,
    sink,
    mongo,
    instances,
    apiKey: key,
    id: (name) => `${prefix}-${name}`,
    async addDevices(devices) {
      const now = new Date();
      const docs: DeviceDocument[] = await Promise.all(
        devices.map(async (d) => ({
          _id: d.id,
          ...(d.type ? { type: d.type } : {}),
          tags: d.tags ?? [],
          metadata: d.metadata ?? {},
          status: d.status ?? 'active',
          credential: { hash: d.secret ? await hashSecret(d.secret, { N: 2 ** 10 }) : 'x', rotatedAt: now },
          createdAt: now,
          updatedAt: now,
          version: 1,
        })),
      );
      await (await mongo.db()).collection<DeviceDocument>(DEVICES_COLLECTION).insertMany(docs);
    },
    async request(method, path, body, headers = {}, instance = 0) {
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
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        // not JSON: keep the text
      }
      return { status: response.status, body: parsed, headers: response.headers };
    },
    async sendEvent(input, instance = 0) {
      const event = new CloudEvent<unknown>({
        id: randomUUID(),
        source: '/test',
        type: input.type,
        subject: input.subject,
        time: new Date().toISOString(),
        datacontenttype: 'application/json',
        data: input.data ?? {},
        ...input.extensions,
      });
      const message = toBinaryMessage(event);
      for (let attempt = 1; ; attempt += 1) {
        const response = await fetch(base(instance), { method: 'POST', headers: message.headers, body: message.body });
        await response.arrayBuffer();
        if (response.status < 500 || attempt >= 5) return response.status;
        await new Promise((resolve) => setTimeout(resolve, 100 * 2 ** attempt));
      }
    },
    deviceRequest: (deviceId, request, payload = {}, jobId, instance) =>
      harness.sendEvent(
        {
          type: JOB_REQUEST_TYPES[request],
          subject: deviceId,
          data: { ...payload, ...(jobId ? { jobId } : {}) },
          extensions: jobId ? { jobid: jobId } : {},
        },
        instance,
      ),
    pass: (instance = 0) => instances[instance]!.runtime.scheduler.pass({ logger, invocationId: 'test-pass' }),
    published: (deviceId, suffix) =>
      publishes().filter((p) => p.deviceId === deviceId && (suffix === undefined || p.topic.endsWith(suffix))),
    async waitFor(deviceId, suffix, after = 0) {
      await sink.waitFor(() => harness.published(deviceId, suffix).length > after);
      return harness.published(deviceId, suffix)[after]!;
    },
    async close() {
      for (const instance of instances) {
        instance.server.closeAllConnections();
        instance.server.close();
        await instance.runtime.close();
      }
      const db = await mongo.db();
      await db.dropDatabase().catch(() => undefined);
      await mongo.close();
      await sink.close();
    },
  };
  return harness;
}

/** A job body with sensible defaults for tests. */
export function jobBody(jobId: string, targets: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return { jobId, document: { operation: 'reboot' }, targets, ...extra };
}
