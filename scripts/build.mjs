// Bundles every deployable (and the local tools) with esbuild into dist/<name>.js, started by
// `node dist/<name>.js`. The functions framework stays external so that a function registers in the
// same registry the framework serves from.

import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';

const entries = {};
const add = (name, file) => {
  if (existsSync(file)) entries[name] = file;
};
add('bridge', 'bridge/index.ts');
for (const name of existsSync('functions') ? readdirSync('functions') : [])
  add(name, join('functions', name, 'index.ts'));
add('router', 'scripts/router/index.ts');
add('simulator', 'scripts/simulator/index.ts');
for (const file of existsSync('scripts/bench') ? readdirSync('scripts/bench') : []) {
  if (/^[a-z-]+\.ts$/.test(file)) add(`bench-${file.replace(/\.ts$/, '')}`, join('scripts/bench', file));
}

const result = await build({
  entryPoints: entries,
  outdir: 'dist',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  sourcemap: 'linked',
  metafile: true,
  logLevel: 'warning',
  legalComments: 'none',
  // Without comments the bundle is pure ASCII: V8 keeps a script's source in memory, one byte per
  // character, instead of two for the whole file once a single comment holds a character beyond Latin-1
  // (5 MB → 10 MB resident per process). Identifiers and syntax stay as written, for readable stack traces.
  minifyWhitespace: true,
  // CommonJS dependencies call require() for Node built-ins; give the ESM bundle one.
  banner: {
    js: "import { createRequire as __kiotCreateRequire } from 'node:module'; const require = __kiotCreateRequire(import.meta.url);",
  },
  external: [
    '@google-cloud/functions-framework',
    '@google-cloud/functions-framework/*',
    // Optional MongoDB driver add-ons, loaded only when installed. (Not `socks`: mqtt requires it on every
    // TCP connect, and the image has no node_modules beyond the functions framework's.)
    'kerberos',
    'snappy',
    '@mongodb-js/zstd',
    'mongodb-client-encryption',
    'gcp-metadata',
    'aws4',
    '@aws-sdk/credential-providers',
  ],
});

for (const [file, output] of Object.entries(result.metafile.outputs)) {
  if (file.endsWith('.js')) console.log(`${file.padEnd(32)} ${(output.bytes / 1024).toFixed(0).padStart(6)} KiB`);
}
