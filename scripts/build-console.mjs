// Bundles the web console (console/web/) into dist/console/: index.html and assets/ with content-hashed
// names, each beside its gzip and brotli forms, which the console server sends as the browser accepts them.
// Every asset is bundled: the page loads nothing from anywhere else.

import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import { build } from 'esbuild';

/** Builds the page into `outdir`; returns its files with their raw and gzip sizes. */
export async function buildConsoleAssets(outdir, { minify = true } = {}) {
  rmSync(outdir, { recursive: true, force: true });
  mkdirSync(join(outdir, 'assets'), { recursive: true });
  const result = await build({
    entryPoints: { app: 'console/web/main.tsx' },
    outdir: join(outdir, 'assets'),
    entryNames: '[name]-[hash]',
    assetNames: '[name]-[hash]',
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: ['chrome109', 'firefox115', 'safari16'],
    jsx: 'automatic',
    jsxImportSource: 'preact',
    tsconfig: 'console/web/tsconfig.json',
    minify,
    sourcemap: false,
    legalComments: 'none',
    metafile: true,
    logLevel: 'warning',
    define: { 'process.env.NODE_ENV': '"production"' },
  });
  const outputs = Object.keys(result.metafile.outputs);
  const js = outputs.find((file) => file.endsWith('.js'));
  const css = outputs.find((file) => file.endsWith('.css'));
  const html = readFileSync('console/web/index.html', 'utf8')
    .replace('{{js}}', `/assets/${basename(js)}`)
    .replace('{{css}}', `/assets/${basename(css)}`);
  writeFileSync(join(outdir, 'index.html'), html);
  const files = [join(outdir, 'index.html'), js, css];
  const sizes = [];
  for (const file of files) {
    const body = readFileSync(file);
    const gzip = gzipSync(body, { level: 9 });
    writeFileSync(`${file}.gz`, gzip);
    writeFileSync(
      `${file}.br`,
      brotliCompressSync(body, {
        params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: body.length },
      }),
    );
    sizes.push({ file, bytes: body.length, gzip: gzip.length });
  }
  return sizes;
}
