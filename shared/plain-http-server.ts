import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { FunctionHandler } from './function-app.js';

/**
 * Serves the shared function entry (`createFunctionApp`: CE parsing, error mapping, /healthz, /metrics) on
 * plain node:http, for the long-running parts that are not functions (the bridge, the tick gate). The functions
 * framework loads Node's `domain` module, which hooks every async resource: measured with `npm run
 * bench:bridge`, that costs the bridge a few percent of its CPU on the hot MQTT → HTTP path, for nothing it
 * uses. This adapter gives the app what it reads of Express: `rawBody`, `originalUrl` and `res.status()`.
 */
export function createPlainServer(app: FunctionHandler, maxBodyBytes: number): Server {
  return createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      // Keep at most one byte over the limit: enough for the app to answer 413, never an unbounded body.
      if (size <= maxBodyBytes + 1) chunks.push(chunk);
    });
    req.on('end', () => {
      const request = Object.assign(req, {
        rawBody: Buffer.concat(chunks).subarray(0, maxBodyBytes + 1),
        originalUrl: req.url,
      });
      const response = Object.assign(res, {
        status(code: number) {
          res.statusCode = code;
          return response;
        },
      });
      app(request as never, response as never).catch(() => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
        res.end('{"error":{"code":"internal","message":"an unexpected error occurred; it will be retried"}}');
      });
    });
  });
}
