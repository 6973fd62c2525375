import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProxy } from '../../../console/server/proxy.js';
import { CONTENT_SECURITY_POLICY, createConsoleServer } from '../../../console/server/server.js';
import { loadAssets } from '../../../console/server/static-files.js';
import { createLogger } from '../../../shared/logger.js';

const listen = async (server: Server) => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
};

/** A raw GET that keeps the body compressed and the headers as sent. */
const raw = (url: string, headers: Record<string, string> = {}) =>
  new Promise<{ status: number; headers: IncomingMessage['headers']; body: Buffer }>((resolve, reject) => {
    request(url, { headers }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () =>
        resolve({ status: response.statusCode!, headers: response.headers, body: Buffer.concat(chunks) }),
      );
    })
      .on('error', reject)
      .end();
  });

// The console's server over real HTTP: the page from memory, and the same-origin proxy to an upstream API.
describe('console server', () => {
  let assets: string;
  let upstream: Server;
  let server: Server;
  let base: string;
  const seen: { method: string; url: string; headers: IncomingMessage['headers']; body: string }[] = [];
  let streamClosed = false;

  beforeAll(async () => {
    assets = mkdtempSync(join(tmpdir(), 'kiot-console-assets-'));
    mkdirSync(join(assets, 'assets'));
    writeFileSync(join(assets, 'index.html'), '<!doctype html><title>kiot console</title>');
    const script = 'console.log("app");'.repeat(100);
    writeFileSync(join(assets, 'assets', 'app-ABC.js'), script);
    writeFileSync(join(assets, 'assets', 'app-ABC.js.gz'), gzipSync(script));

    upstream = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk));
      req.on('end', () => {
        seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
        if (req.url === '/stream') {
          res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
          res.write('event: ready\ndata: {}\n\n');
          const timer = setInterval(() => res.write('event: samples\ndata: [1]\n\n'), 20);
          res.on('close', () => {
            clearInterval(timer);
            streamClosed = true;
          });
          return;
        }
        res.writeHead(req.url === '/missing' ? 404 : 200, {
          'content-type': 'application/json',
          etag: '"7"',
          'set-cookie': 'tracker=1',
          'x-internal': 'secret',
        });
        res.end(JSON.stringify({ url: req.url }));
      });
    });
    const upstreamBase = await listen(upstream);
    const logger = createLogger('console', 'silent');
    server = createConsoleServer({
      assets: loadAssets(assets),
      upstreams: new Map([['device-registry', new URL(`${upstreamBase}/`)]]),
      proxy: createProxy({ timeoutMs: 5_000, maxBodyBytes: 1_024, logger }),
      logger,
    });
    base = await listen(server);
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    upstream.closeAllConnections();
    await new Promise((resolve) => upstream.close(resolve));
    rmSync(assets, { recursive: true, force: true });
  });

  it('serves the page with a strict policy, hashed assets precompressed and cached for good', async () => {
    const page = await raw(`${base}/`);
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['content-security-policy']).toBe(CONTENT_SECURITY_POLICY);
    expect(CONTENT_SECURITY_POLICY).toContain("script-src 'self'");
    expect(page.headers['cache-control']).toBe('no-cache');
    // A view's URL is the page itself; its router shows the view.
    expect((await raw(`${base}/devices/sim-0001?range=7d`)).body.toString()).toContain('kiot console');

    const script = await raw(`${base}/assets/app-ABC.js`, { 'accept-encoding': 'gzip, br' });
    expect(script.headers['content-encoding']).toBe('gzip');
    expect(script.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(gunzipSync(script.body).toString()).toContain('console.log("app")');
    const plain = await raw(`${base}/assets/app-ABC.js`, { 'accept-encoding': 'gzip;q=0' });
    expect(plain.headers['content-encoding']).toBeUndefined();
    const again = await raw(`${base}/assets/app-ABC.js`, { 'if-none-match': String(script.headers.etag) });
    expect(again.status).toBe(304);
    expect((await raw(`${base}/assets/nothing.js`)).status).toBe(404);
    expect((await fetch(`${base}/`, { method: 'POST' })).status).toBe(405);
    expect(await (await fetch(`${base}/healthz`)).json()).toEqual({
      status: 'ok',
      service: 'console',
      checks: { page: '2 files' },
    });
  });

  it('passes /api/<capability>/… on with the key and the headers an API reads, and nothing else either way', async () => {
    const answer = await fetch(`${base}/api/device-registry/devices/a?limit=2`, {
      method: 'PATCH',
      headers: {
        authorization: 'Bearer kiot_k_s',
        'if-match': '"3"',
        'content-type': 'application/json',
        cookie: 'session=1',
      },
      body: '{"name":"x"}',
    });
    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual({ url: '/devices/a?limit=2' });
    expect(answer.headers.get('etag')).toBe('"7"');
    expect(answer.headers.get('set-cookie')).toBeNull();
    expect(answer.headers.get('x-internal')).toBeNull();
    const request_ = seen.at(-1)!;
    expect(request_).toMatchObject({ method: 'PATCH', body: '{"name":"x"}' });
    expect(request_.headers).toMatchObject({ authorization: 'Bearer kiot_k_s', 'if-match': '"3"' });
    expect(request_.headers.cookie).toBeUndefined();
    expect((await fetch(`${base}/api/device-registry/missing`)).status).toBe(404);
    // The path never names another host.
    await fetch(`${base}/api/device-registry//evil.example/x`);
    expect(seen.at(-1)!.url).toBe('//evil.example/x');
    expect(seen.at(-1)!.headers.host).toMatch(/^127\.0\.0\.1:/);
    const unknown = await fetch(`${base}/api/nothing-here/x`);
    expect(unknown.status).toBe(404);
    const big = await fetch(`${base}/api/device-registry/devices`, { method: 'POST', body: 'x'.repeat(2_000) });
    expect(big.status).toBe(413);
  });

  it('streams server-sent events through as they come, and ends the upstream stream when the browser leaves', async () => {
    const abort = new AbortController();
    const response = await fetch(`${base}/api/device-registry/stream`, { signal: abort.signal });
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    const reader = response.body!.getReader();
    let text = '';
    while ((text.match(/event: samples/g) ?? []).length < 3)
      text += new TextDecoder().decode((await reader.read()).value);
    expect(text.startsWith('event: ready')).toBe(true);
    abort.abort();
    await expect.poll(() => streamClosed, { timeout: 10_000 }).toBe(true);
  });

  it('answers 502 with a problem when the upstream does not answer', async () => {
    const logger = createLogger('console', 'silent');
    const dead = createConsoleServer({
      assets: loadAssets(assets),
      upstreams: new Map([['jobs', new URL('http://127.0.0.1:9/')]]),
      proxy: createProxy({ timeoutMs: 2_000, maxBodyBytes: 1_024, logger }),
      logger,
    });
    const url = await listen(dead);
    const answer = await fetch(`${url}/api/jobs/jobs`);
    expect(answer.status).toBe(502);
    expect(await answer.json()).toMatchObject({ error: { code: 'upstream_unavailable' } });
    await new Promise((resolve) => dead.close(resolve));
  });
});
