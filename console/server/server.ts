import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from '../../shared/logger.js';
import type { Capability } from './config.js';
import type { ApiProxy } from './proxy.js';
import { type Asset, chooseEncoding } from './static-files.js';

/**
 * What the page may load and talk to: only this origin (its bundle, its styles, `/api/…`); images from
 * data: URLs (uPlot's canvas export is not used), report pages in a sandboxed frame from a blob: URL. Styles
 * allow 'unsafe-inline' for one reason: a report's HTML (self-contained, its own <style>) is shown in that
 * frame, which inherits this policy; scripts never run inline.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  'frame-src blob:',
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "object-src 'none'",
].join('; ');

const PAGE_HEADERS = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
};

export interface ConsoleServerOptions {
  assets: Map<string, Asset>;
  upstreams: Map<Capability, URL>;
  proxy: ApiProxy;
  logger: Logger;
}

/**
 * The console's one process: the built page (from memory, precompressed, hashed assets cached for good),
 * `/api/<capability>/…` passed on to that capability's app API, and `/healthz` for Knative's probes. Every
 * path that is not a file or the API is the page itself, whose router shows the view for it.
 */
export function createConsoleServer(options: ConsoleServerOptions): Server {
  const { assets, upstreams, proxy, logger } = options;
  const index = assets.get('/index.html')!;

  function serveAsset(req: IncomingMessage, res: ServerResponse, asset: Asset) {
    const encoding = chooseEncoding(asset, req.headers['accept-encoding']);
    const body = encoding === 'br' ? asset.brotli! : encoding === 'gzip' ? asset.gzip! : asset.body;
    const headers: Record<string, string> = {
      ...PAGE_HEADERS,
      'content-type': asset.contentType,
      'content-length': String(body.length),
      'cache-control': asset.immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
      etag: asset.etag,
      vary: 'accept-encoding',
      ...(encoding ? { 'content-encoding': encoding } : {}),
    };
    if (req.headers['if-none-match'] === asset.etag) {
      res.writeHead(304, { etag: asset.etag, 'cache-control': headers['cache-control']! });
      return void res.end();
    }
    res.writeHead(200, headers);
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  function notFound(res: ServerResponse, message: string) {
    res.writeHead(404, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify({ error: { code: 'not_found', message } }));
  }

  return createServer((req, res) => {
    const url = req.url ?? '/';
    const queryAt = url.indexOf('?');
    const path = queryAt === -1 ? url : url.slice(0, queryAt);
    try {
      if (path.startsWith('/api/')) {
        const slash = path.indexOf('/', 5);
        const name = (slash === -1 ? path.slice(5) : path.slice(5, slash)) as Capability;
        const upstream = upstreams.get(name);
        if (!upstream) return notFound(res, `no API named ${name} here`);
        return proxy.forward(req, res, upstream, `${slash === -1 ? '/' : path.slice(slash)}${url.slice(path.length)}`);
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'application/json' });
        return void res.end(
          JSON.stringify({ error: { code: 'method_not_allowed', message: 'the page is read-only' } }),
        );
      }
      if (path === '/healthz') {
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
        // The page is in memory: nothing else to check. (Probing the functions would wake them from zero.)
        return void res.end(
          JSON.stringify({ status: 'ok', service: 'console', checks: { page: `${assets.size} files` } }),
        );
      }
      const asset = assets.get(path);
      if (asset && path !== '/index.html') return serveAsset(req, res, asset);
      // A file that is not there is a 404; any other path is a view of the page.
      if (/\.[a-z0-9]+$/i.test(path) || path.startsWith('/assets/')) return notFound(res, `no file ${path}`);
      return serveAsset(req, res, index);
    } catch (error) {
      logger.error({ err: error, path }, 'request failed');
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end('{"error":{"code":"internal","message":"an unexpected error occurred"}}');
    }
  });
}
