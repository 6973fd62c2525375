import { createServer, type IncomingMessage, type Server, type ServerResponse, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { AppError, PayloadTooLargeError, toProblem } from './errors.js';
import type { FunctionHandler } from './function-app.js';
import type { Logger } from './logger.js';

/**
 * The HTTP server of a function: Node's own, handing every request to the capability's one entry
 * (`createFunctionApp`), which does the routing, the CloudEvents and the error mapping itself. Not the
 * functions framework's Express server: its per-request wrapper (`wrapHttpFunction`) opens a `domain` for
 * every request, and the first one switches on Node's domain async hook for every promise of the process for
 * good (node:domain enables its `createHook` in the Domain constructor). Profiled under bench:ingest's storage
 * step that hook was a fifth of telemetry-ingest's CPU with telemetry batches, and nothing of the framework is
 * used besides (its body parsers were already bypassed). The body is read here up to the function's limit
 * (413, 415 for a content encoding) and handed over as `rawBody`, so the handler checks the API key or the
 * event's sender before anything is parsed (function-app.ts); uploads of a `streamBody` route reach the
 * handler with their body unread.
 */
export function createFunctionServer(_name: string, handler: FunctionHandler): Server {
  const limit = handler.maxBodyBytes ?? 1_048_576;
  const streamsBody = handler.streamsBody;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const request = Object.assign(req, { originalUrl: req.url ?? '/' });
    const serve = () =>
      handler(request as never, res as never).catch((error: unknown) => answerProblem(res, error, false));
    const path = new URL(req.url ?? '/', 'http://function.local').pathname;
    if (streamsBody?.(req.method ?? 'GET', path)) {
      void serve();
      return;
    }
    readBody(req, limit).then(
      (raw) => {
        (request as IncomingMessage & { rawBody?: Buffer }).rawBody = raw;
        void serve();
      },
      // The rest of a refused body is never read: the connection cannot carry another request.
      (error: unknown) => answerProblem(res, error, true),
    );
  });
  server.on('clientError', answerClientError);
  return server;
}

/**
 * A request Node's parser refuses before any handler sees it: the answer Node itself gives (431 for a request
 * line and headers over its 16 KiB limit, RFC 6585 §5; 408 for a head that came too slowly; 400 for the rest),
 * with kiot's problem body instead of an empty one, and only where no answer of an earlier request on the
 * connection has begun (Node's own rule, `socketOnError` in lib/_http_server.js). The connection closes.
 */
function answerClientError(error: NodeJS.ErrnoException, socket: Duplex): void {
  const inFlight = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (error.code !== 'ECONNRESET' && socket.writable && !inFlight?.headersSent) {
    const [status, code] =
      error.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'request_head_too_large']
        : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, 'request_timeout']
          : [400, 'malformed_request'];
    const problem = toProblem(new AppError(status, code, `${STATUS_CODES[status]}: the request was not read`));
    const body = JSON.stringify(problem.body);
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json\r\n` +
        `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

/** A problem body (`toProblem`) for what went wrong before or outside the handler's own error mapping. */
function answerProblem(res: ServerResponse, error: unknown, closeConnection: boolean): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const problem = toProblem(error);
  res.statusCode = problem.status;
  res.setHeader('content-type', 'application/json');
  if (closeConnection) res.setHeader('connection', 'close');
  for (const [header, value] of Object.entries(problem.headers)) res.setHeader(header, value);
  res.end(JSON.stringify(problem.body));
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
 * Serves a capability on `port` (`node dist/<name>.js`), and stops it gracefully on SIGTERM/SIGINT.
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
