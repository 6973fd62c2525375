import { Agent as HttpAgent, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Logger } from '../../shared/logger.js';

/** Request headers an app API reads; everything else (cookies above all) stays in the browser. */
const FORWARDED_REQUEST = [
  'authorization',
  'content-type',
  'accept',
  'if-match',
  'if-none-match',
  'idempotency-key',
  'last-event-id',
];
/** Response headers the console's page reads. */
const FORWARDED_RESPONSE = [
  'content-type',
  'content-disposition',
  'cache-control',
  'etag',
  'location',
  'retry-after',
  'www-authenticate',
  'allow',
  'x-accel-buffering',
];

export interface ApiProxy {
  /** Passes the request on to `upstream` + `path` and streams the answer back (a live stream included). */
  forward(req: IncomingMessage, res: ServerResponse, upstream: URL, path: string): void;
  close(): void;
}

const problem = (res: ServerResponse, status: number, code: string, message: string) => {
  if (res.destroyed || res.writableEnded) return;
  if (res.headersSent) return void res.destroy();
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify({ error: { code, message } }));
};

/**
 * A same-origin reverse proxy to the capabilities' app APIs: the browser talks to one origin (no CORS, a
 * strict Content-Security-Policy), the API key passes through untouched (each function checks it; the console
 * holds no credential of its own), bodies stream both ways, and a live stream's events are written as they
 * come (no buffering, no timeout on the body once the headers arrived).
 */
export function createProxy(options: { timeoutMs: number; maxBodyBytes: number; logger: Logger }): ApiProxy {
  const agents = {
    'http:': new HttpAgent({ keepAlive: true, maxSockets: 64 }),
    'https:': new HttpsAgent({ keepAlive: true, maxSockets: 64 }),
  };
  return {
    forward(req, res, upstream, path) {
      const declared = Number(req.headers['content-length'] ?? 0);
      if (declared > options.maxBodyBytes)
        return problem(res, 413, 'payload_too_large', `the body exceeds ${options.maxBodyBytes} bytes`);
      const headers: Record<string, string> = {};
      for (const name of FORWARDED_REQUEST) {
        const value = req.headers[name];
        if (typeof value === 'string') headers[name] = value;
      }
      if (req.headers['content-length']) headers['content-length'] = req.headers['content-length'];
      else if (req.headers['transfer-encoding']) headers['transfer-encoding'] = req.headers['transfer-encoding'];
      // String concatenation, never `new URL(path, base)`: `//host` in the path must not name another host.
      const base = upstream.pathname.replace(/\/$/, '');
      const send = upstream.protocol === 'https:' ? httpsRequest : httpRequest;
      const outgoing = send(
        {
          protocol: upstream.protocol,
          hostname: upstream.hostname,
          port: upstream.port,
          method: req.method,
          path: `${base}${path}`,
          headers,
          agent: agents[upstream.protocol as 'http:' | 'https:'],
        },
        (answer) => {
          clearTimeout(timer);
          const out: Record<string, string | string[]> = {};
          for (const name of FORWARDED_RESPONSE) {
            const value = answer.headers[name];
            if (value !== undefined) out[name] = value;
          }
          res.writeHead(answer.statusCode ?? 502, out);
          // A live stream: each event goes out as it arrives.
          if (String(answer.headers['content-type']).startsWith('text/event-stream')) res.flushHeaders();
          answer.pipe(res);
          answer.on('error', () => res.destroy());
        },
      );
      const timer = setTimeout(
        () => outgoing.destroy(new Error(`no answer within ${options.timeoutMs} ms`)),
        options.timeoutMs,
      );
      outgoing.on('error', (error) => {
        clearTimeout(timer);
        options.logger.warn({ err: error, upstream: upstream.host, path }, 'upstream request failed');
        problem(res, 502, 'upstream_unavailable', `the ${upstream.host} API did not answer: ${error.message}`);
      });
      // The browser left (a closed tab, a live chart unmounted): end the upstream request too.
      res.on('close', () => {
        if (!res.writableFinished) outgoing.destroy();
      });
      let received = 0;
      req.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received > options.maxBodyBytes) {
          outgoing.destroy();
          problem(res, 413, 'payload_too_large', `the body exceeds ${options.maxBodyBytes} bytes`);
        }
      });
      req.pipe(outgoing);
    },
    close() {
      agents['http:'].destroy();
      agents['https:'].destroy();
    },
  };
}
