import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import * as functions from '@google-cloud/functions-framework';
import { getTestServer } from '@google-cloud/functions-framework/testing';
import { AppError, InvalidInputError, PayloadTooLargeError, toProblem } from './errors.js';
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
 * same `getServer` its CLI uses), with the request body read by us, not by the framework's body parsers:
 * they would parse (and answer malformed JSON, or buffer a body of up to 1 GiB) before our handler could
 * check who is asking. Here the bytes are read up to the function's limit and handed to Express as a
 * finished stream, which its parsers skip; the handler checks the API key or the event's sender first and
 * parses the body after (function-app.ts).
 */
export function createFunctionServer(name: string, handler: FunctionHandler): Server {
  functions.http(name, handler);
  const server = getTestServer(name);
  const app = server.listeners('request')[0] as unknown as ExpressApp;
  const express = app as unknown as (req: IncomingMessage, res: ServerResponse) => void;
  const limit = handler.maxBodyBytes ?? 1_048_576;
  const streamsBody = handler.streamsBody;
  server.removeAllListeners('request');
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://function.local').pathname;
    // Uploads of any size go to the handler straight from Node's server, their body still unread.
    if (streamsBody?.(req.method ?? 'GET', path)) {
      void handler(req as never, res as never);
      return;
    }
    readBody(req, limit).then(
      (raw) => {
        (req as IncomingMessage & { rawBody?: Buffer }).rawBody = raw;
        express(req, res);
      },
      (error: unknown) => {
        const problem = toProblem(error);
        res.statusCode = problem.status;
        res.setHeader('content-type', 'application/json');
        // The rest of a refused body is never read: the connection cannot carry another request.
        res.setHeader('connection', 'close');
        for (const [header, value] of Object.entries(problem.headers)) res.setHeader(header, value);
        res.end(JSON.stringify(problem.body));
      },
    );
  });
  // Express tells error handlers by their four parameters; anything its middleware refuses is a problem body.
  app.use((error, _req, res, _next) => {
    const { status } = (error ?? {}) as { status?: number };
    const mapped =
      status !== undefined && status >= 400 && status < 500
        ? new InvalidInputError('the request could not be read', undefined, 'invalid_request')
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
 * The request's bytes, at most `limit` of them (413 past it, told by Content-Length before anything is read).
 * A Content-Encoding is refused (415): inflating would let a small body grow past any limit.
 */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const encoding = (req.headers['content-encoding'] ?? 'identity').toLowerCase();
    if (encoding !== 'identity') {
      req.resume();
      reject(new AppError(415, 'unsupported_media_type', 'send the body without a content encoding'));
      return;
    }
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) {
      req.resume();
      reject(new PayloadTooLargeError(limit, declared));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.resume();
        reject(new PayloadTooLargeError(limit, size));
        return;
      }
      chunks.push(chunk);
    });
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
  });
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
  // Scaled from zero, a request is waiting: the stores start connecting now, in parallel with the rest of the start.
  handler.connect?.();
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
