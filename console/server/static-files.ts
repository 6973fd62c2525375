import { readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';

/** One file of the built page, held in memory with its precompressed forms (the page is ~100 kB). */
export interface Asset {
  body: Buffer;
  gzip?: Buffer;
  brotli?: Buffer;
  contentType: string;
  /** Hashed file names never change: cached for a year. index.html is revalidated every time. */
  immutable: boolean;
  etag: string;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.map': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
};

/** Reads the built page (`index.html`, `assets/…`, with `.gz`/`.br` beside what compresses) into memory. */
export function loadAssets(dir: string): Map<string, Asset> {
  const files = new Map<string, string>();
  const walk = (folder: string) => {
    for (const name of readdirSync(folder)) {
      const path = join(folder, name);
      if (statSync(path).isDirectory()) walk(path);
      else files.set(`/${relative(dir, path).split(sep).join('/')}`, path);
    }
  };
  walk(dir);
  const assets = new Map<string, Asset>();
  for (const [url, path] of files) {
    if (url.endsWith('.gz') || url.endsWith('.br')) continue;
    const body = readFileSync(path);
    const gzip = files.get(`${url}.gz`);
    const brotli = files.get(`${url}.br`);
    assets.set(url, {
      body,
      ...(gzip ? { gzip: readFileSync(gzip) } : {}),
      ...(brotli ? { brotli: readFileSync(brotli) } : {}),
      contentType: TYPES[extname(url)] ?? 'application/octet-stream',
      immutable: url.startsWith('/assets/'),
      etag: `"${statSync(path).size.toString(36)}-${statSync(path).mtimeMs.toString(36)}"`,
    });
  }
  if (!assets.has('/index.html'))
    throw new Error(`${dir} holds no index.html: build the console first (npm run build)`);
  return assets;
}

/** The best encoding of `asset` the client accepts (RFC 9110 §12.5.3; q-values other than 0 are not ranked). */
export function chooseEncoding(asset: Asset, acceptEncoding: string | undefined): 'br' | 'gzip' | undefined {
  const accepted = new Set(
    (acceptEncoding ?? '')
      .split(',')
      .map((part) => part.trim())
      .filter((part) => !/;\s*q=0(\.0*)?$/.test(part))
      .map((part) => part.split(';')[0]!.trim().toLowerCase()),
  );
  if (asset.brotli && accepted.has('br')) return 'br';
  if (asset.gzip && accepted.has('gzip')) return 'gzip';
  return undefined;
}
