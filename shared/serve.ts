import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import * as functions from '@google-cloud/functions-framework';
import { getTestServer } from '@google-cloud/functions-framework/testing';
import { InvalidInputError, PayloadTooLargeError, toProblem } from './errors.js';
import type { FunctionHandler } from './function-app.js';
import type { Logger } from './logger.js';

type ExpressApp = { use(handler: (error: unknown, req: unknown, res: ExpressResponse, next: unknown) => void): void };
type ExpressResponse = {
  status(code: number): ExpressResponse;
  setHeader(name: string, value: string): void;
  end(body: string): void;
  headersSent: boolean;
};

/**
 * The framework's own Express server for a registered function (`getTestServer` builds it with the
 * same `getServer` its CLI uses). One addition: its body parsers answer malformed JSON with an HTML
 * page, so an error handler turns that into our JSON problem body.
 */
export function createFunctionServer(name: string, handler: FunctionHandler): Server {
  functions.http(name, handler);
  const server = getTestServer(name);
  const app = server.listeners('request')[0] as unknown as ExpressApp;
  const streamsBody = handler.streamsBody;
  if (streamsBody) {
    // Uploads of any size: the framework's body parsers would buffer the whole body first, so requests for a
    // `streamBody` route go to the handler straight from Node's server, their body still unread.
    const express = app as unknown as (req: IncomingMessage, res: ServerResponse) => void;
    server.removeAllListeners('request');
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      const path = new URL(req.url ?? '/', 'http://function.local').pathname;
      if (streamsBody(req.method ?? 'GET', path)) void handler(req as never, res as never);
      else express(req, res);
    });
  }
  // Express tells error handlers by their four parameters.
  app.use((error, _req, res, _next) => {
    const { type, status, length, limit } = (error ?? {}) as {
      type?: string;
      status?: number;
      length?: number;
      limit?: number;
    };
    const mapped =
      type === 'entity.too.large'
        ? new PayloadTooLargeError(limit ?? 0, length ?? 0)
        : status !== undefined && status >= 400 && status < 500
          ? new InvalidInputError('the body could not be parsed', undefined, 'invalid_json')
          : error;
    const problem = toProblem(mapped);
    if (res.headersSent) return;
    res.status(problem.status);
    res.setHeader('content-type', 'application/json');
    for (const [header, value] of Object.entries(problem.headers)) res.setHeader(header, value);
    res.end(JSON.stringify(problem.body));
  });
  return server;
}

/**
 * Registers a capability with the functions framework and serves it on `port`, so that
 * `node dist/<name>.js` starts it without the framework's CLI. The framework stays external to the
 * bundle so that registration and server share one function registry.
 */
export async function serveFunction(
  name: string,
  handler: FunctionHandler,
  options: { port: number; logger: Logger; onShutdown?: () => Promise<void> },
): Promise<Server> {
  const server = createFunctionServer(name, handler);
  await new Promise<void>((resolve) => server.listen(options.port, resolve));
  const address = server.address();
  options.logger.info({ port: typeof address === 'object' && address ? address.port : options.port }, 'listening');

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    options.logger.info({ signal }, 'shutting down');
    // Knative sends SIGTERM and keeps routing for a moment: finish what is in flight, then close.
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await options.onShutdown?.().catch((error: unknown) => options.logger.error({ err: error }, 'shutdown failed'));
    options.logger.flush();
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
  return server;
}
