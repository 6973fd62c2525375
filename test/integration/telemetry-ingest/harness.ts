import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { MongoClientOptions } from 'mongodb';
import { createTelemetryIngestApp, type TelemetryIngestApp } from '../../../functions/telemetry-ingest/app.js';
import { type Config, configSchema } from '../../../functions/telemetry-ingest/config.js';
import { mintApiKey } from '../../../shared/api-keys.js';
import { CloudEvent, toBinaryMessage } from '../../../shared/cloudevents.js';
import { type Env, loadConfig } from '../../../shared/config.js';
import {
  DEVICE_TYPES_COLLECTION,
  DEVICES_COLLECTION,
  type DeviceDocument,
  type DeviceTypeDocument,
  type TelemetrySchema,
} from '../../../shared/devices.js';
import { createLogger } from '../../../shared/logger.js';
import { connectMongo, type MongoHandle } from '../../../shared/mongo.js';
import { createRedis, type RedisHandle } from '../../../shared/redis.js';
import { DEVICE_SCRYPT_N, hashSecret } from '../../../shared/secrets.js';
import { createFunctionServer } from '../../../shared/serve.js';
import { MONGODB_URL, REDIS_URL, uniqueName } from '../../support/services.js';
import { type SinkServer, startSinkServer } from '../../support/sink-server.js';

/** The function served by the real functions framework over real HTTP, with its own database and keys. */
export interface Harness {
  base: string;
  config: Config;
  sink: SinkServer;
  mongo: MongoHandle;
  redis: RedisHandle;
  app: TelemetryIngestApp;
  /** `Authorization` header of an app API key with every scope. */
  apiKey: string;
  /** POSTs a CloudEvent in binary mode; `rawData` is sent as the body text instead of `data` as JSON. */
  send(
    type: string,
    subject: string,
    data: unknown,
    options?: { id?: string; time?: string; rawData?: string },
  ): Promise<Response>;
  /** Posts an `io.kiot.telemetry.batch` of these items (id and time default per item). */
  sendBatch(items: BatchItemInput[], options?: { id?: string }): Promise<Response>;
  /** Posts an `io.kiot.telemetry.batch` whose data is exactly `data`. */
  sendBatchData(data: unknown, options?: { id?: string }): Promise<Response>;
  /** The dead-letter records the function POSTed to DEAD_LETTER_SINK (refused batch items). */
  deadLetters(): CloudEvent<unknown>[];
  get(path: string): Promise<Response>;
  addDevice(id: string, options?: { type?: string; status?: 'active' | 'disabled'; secret?: string }): Promise<void>;
  addDeviceType(id: string, telemetrySchema: TelemetrySchema): Promise<void>;
  /** The `devices/{id}/errors` notices the function emitted to K_SINK. */
  notices(deviceId: string): { code: string; message: string; eventId: string; details?: unknown }[];
  close(): Promise<void>;
}

export interface BatchItemInput {
  subject: string;
  data: unknown;
  id?: string;
  time?: string;
}

export const TYPES = {
  telemetry: 'io.kiot.telemetry.received',
  batch: 'io.kiot.telemetry.batch',
  state: 'io.kiot.state.reported',
  connected: 'io.kiot.device.connected',
  disconnected: 'io.kiot.device.disconnected',
} as const;

export interface HarnessOptions {
  mongoUrl?: string;
  redisUrl?: string;
  /** Listen on this port instead of any free one (when a router must know it in advance). */
  port?: number;
  /** More driver options (command monitoring). */
  mongoOptions?: MongoClientOptions;
  /**
   * Answer 204 to device events of subjects without this prefix, without handling them: on the shared
   * Mosquitto a bridge of our own also receives every other test's devices, which are none of ours.
   */
  onlySubjectsStartingWith?: string;
  /** Awaited before each CloudEvent is handled: a test holds a delivery in flight with it. */
  beforeEvent?: (headers: Record<string, unknown>) => Promise<void>;
}

export async function startHarness(env: Env = {}, options: HarnessOptions = {}): Promise<Harness> {
  const sink = await startSinkServer();
  const dbName = uniqueName('ti')
    .replace(/[^A-Za-z0-9_-]/g, '_')
    .slice(0, 60);
  const { key, entry } = await mintApiKey('tester', ['*']);
  const config = loadConfig(configSchema, {
    MONGODB_URL: options.mongoUrl ?? MONGODB_URL,
    MONGODB_DB: dbName,
    REDIS_URL: options.redisUrl ?? REDIS_URL,
    REDIS_PREFIX: uniqueName('ti').replace(/[^A-Za-z0-9:_-]/g, '_'),
    K_SINK: sink.url,
    // The same recording sink, under its own path: the records of refused batch items.
    DEAD_LETTER_SINK: `${sink.url}dead-letters`,
    LOG_LEVEL: 'silent',
    API_KEYS: JSON.stringify([entry]),
    ...env,
  });
  const mongo = connectMongo(config, options.mongoOptions);
  const redis = createRedis(config.REDIS_URL, { autoPipelining: true });
  const app = createTelemetryIngestApp({
    config,
    logger: createLogger('telemetry-ingest', process.env.TEST_LOG_LEVEL ?? 'silent'),
    mongo,
    redis,
  });
  app.start();
  const prefix = options.onlySubjectsStartingWith;
  const before = options.beforeEvent;
  const handler: typeof app.handler =
    prefix || before
      ? async (req, res) => {
          const subject = req.headers['ce-subject'];
          if (prefix && typeof subject === 'string' && !subject.startsWith(prefix)) return void res.status(204).end();
          if (before && req.headers['ce-id']) await before(req.headers);
          await app.handler(req, res);
        }
      : app.handler;
  const server: Server = createFunctionServer(uniqueName('telemetry-ingest'), handler);
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const apiKey = `Bearer ${key}`;

  const harness: Harness = {
    base,
    config,
    sink,
    mongo,
    redis,
    app,
    apiKey,
    send(type, subject, data, sendOptions = {}) {
      const event = new CloudEvent<unknown>({
        id: sendOptions.id ?? uniqueName('ev'),
        source: 'mqtt://test',
        type,
        subject,
        time: sendOptions.time ?? new Date().toISOString(),
        datacontenttype: 'application/json',
        data,
      });
      const message = toBinaryMessage(event);
      const body = sendOptions.rawData ?? message.body;
      return fetch(base, { method: 'POST', headers: message.headers, body });
    },
    sendBatch(items, batchOptions = {}) {
      return harness.sendBatchData(
        items.map((item) => ({
          id: item.id ?? uniqueName('ev'),
          subject: item.subject,
          time: item.time ?? new Date().toISOString(),
          datacontenttype: 'application/json',
          data: item.data,
        })),
        batchOptions,
      );
    },
    sendBatchData(data, batchOptions = {}) {
      const event = new CloudEvent<unknown>({
        id: batchOptions.id ?? uniqueName('batch'),
        source: 'mqtt://test',
        type: TYPES.batch,
        time: new Date().toISOString(),
        datacontenttype: 'application/json',
        data,
      });
      const message = toBinaryMessage(event);
      return fetch(base, { method: 'POST', headers: message.headers, body: message.body });
    },
    deadLetters: () =>
      sink.received.filter((request) => request.path === '/dead-letters' && request.event).map((r) => r.event!),
    get: (path) => fetch(`${base}${path}`, { headers: { authorization: apiKey } }),
    async addDevice(id, deviceOptions = {}) {
      const now = new Date();
      const doc: DeviceDocument = {
        _id: id,
        ...(deviceOptions.type ? { type: deviceOptions.type } : {}),
        tags: [],
        metadata: {},
        status: deviceOptions.status ?? 'active',
        credential: {
          hash: await hashSecret(deviceOptions.secret ?? 'not-used-secret', { N: DEVICE_SCRYPT_N }),
          rotatedAt: now,
        },
        createdAt: now,
        updatedAt: now,
        version: 1,
      };
      await (await mongo.db()).collection<DeviceDocument>(DEVICES_COLLECTION).insertOne(doc);
    },
    async addDeviceType(id, telemetrySchema) {
      await (await mongo.db())
        .collection<DeviceTypeDocument>(DEVICE_TYPES_COLLECTION)
        .insertOne({ _id: id, telemetrySchema, updatedAt: new Date(), version: 1 });
    },
    notices: (deviceId) =>
      sink.received
        .map((request) => request.event)
        .filter((event) => event?.type === 'io.kiot.mqtt.publish' && event.subject === deviceId)
        .map(
          (event) =>
            (event!.data as { payload: { code: string; message: string; eventId: string; details?: unknown } }).payload,
        ),
    async close() {
      await new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
      await app.close();
      await (await mongo.db()).dropDatabase().catch(() => undefined);
      await mongo.close();
      await redis.close();
      await sink.close();
    },
  };
  return harness;
}

/** Samples stored for a device, sorted by time. */
export async function storedSamples(harness: Harness, deviceId: string) {
  return (await harness.mongo.db())
    .collection('telemetry')
    .find({ deviceId }, { sort: { ts: 1, _id: 1 } })
    .toArray();
}
