import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { MongoClientOptions } from 'mongodb';
import { createReportApp } from '../../../functions/report-generation/app.js';
import { type AppDeps, createDeps, ensureIndexes } from '../../../functions/report-generation/deps.js';
import { SOURCE } from '../../../functions/report-generation/schema.js';
import { createApiKeyAuthorizer, mintApiKey } from '../../../shared/api-keys.js';
import { createEmitter } from '../../../shared/emitter.js';
import { createLogger } from '../../../shared/logger.js';
import { createMongo, type MongoHandle } from '../../../shared/mongo.js';
import { createFunctionServer } from '../../../shared/serve.js';
import { MONGODB_URL, uniqueName } from '../../support/services.js';
import { type SinkServer, startSinkServer } from '../../support/sink-server.js';

/**
 * report-generation served by the real functions framework over real HTTP, on its own database, with
 * a real API key and a recording sink as K_SINK.
 */
export interface Harness {
  base: string;
  mongo: MongoHandle;
  deps: AppDeps;
  sink: SinkServer;
  /** The function's clock: real time plus an offset the test moves forward (ingestion time in fixtures too). */
  now(): Date;
  advance(ms: number): void;
  /** Authorization header values: read+write, and read only. */
  auth: { admin: Record<string, string>; reader: Record<string, string> };
  request(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Response>;
  close(): Promise<void>;
}

export function dbName(prefix: string): string {
  return uniqueName(prefix)
    .replace(/[^A-Za-z0-9_-]/g, '_')
    .slice(0, 60);
}

export async function startHarness(
  prefix: string,
  options: { mongoOptions?: MongoClientOptions } = {},
): Promise<Harness> {
  let offset = 0;
  const now = () => new Date(Date.now() + offset);
  const mongo = createMongo(MONGODB_URL, dbName(prefix), options.mongoOptions);
  const sink = await startSinkServer();
  const logger = createLogger('report-generation', 'silent');
  const deps = createDeps({
    mongo,
    logger,
    emitter: createEmitter({ sink: sink.url, source: SOURCE, attempts: 2 }),
    clock: now,
  });
  await ensureIndexes(deps);
  const admin = await mintApiKey(`rg-admin`, ['reports:*']);
  const reader = await mintApiKey(`rg-reader`, ['reports:read']);
  const handler = createReportApp(deps, { logger, authorize: createApiKeyAuthorizer([admin.entry, reader.entry]) });
  const server: Server = createFunctionServer(uniqueName('report-generation'), handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const auth = { admin: { authorization: `Bearer ${admin.key}` }, reader: { authorization: `Bearer ${reader.key}` } };
  return {
    base,
    mongo,
    deps,
    sink,
    now,
    advance: (ms) => {
      offset += ms;
    },
    auth,
    request: (method, path, body, headers = auth.admin) =>
      fetch(`${base}${path}`, {
        method,
        headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
        body: body === undefined ? undefined : JSON.stringify(body),
      }),
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await sink.close();
      await (await mongo.db()).dropDatabase().catch(() => undefined);
      await mongo.close();
    },
  };
}
