// Bundles every entry point with esbuild into dist/. Two kinds:
// - The deployables (bridge, tick-gate, each function): one CommonJS bundle each, dist/<name>.bundle.cjs, with
//   everything inside, the functions framework too, started by `node dist/<name>.js`, which calls
//   dist/launcher.cjs (scripts/launcher.cjs): V8's code cache for the bundle, trained here by starting each one
//   once (dist/<name>.bundle.cjs.cache), and source maps read only when a stack is formatted. What a cold start
//   costs and why: docs/performance.md ("Cold start").
// - The console and the local tools (router, simulator, stack, benches): ES module bundles dist/<name>.bundle.mjs with a
//   launcher that turns on Node's source maps first; they may use top-level await and load the framework from
//   node_modules.
// Every launcher dist/<name>.js is CommonJS (dist/package.json says so): the heap flags' reset (launcher.cjs) then runs
// before Node compiles its ES module loader, which an ES module entry needs first (docs/performance.md, "Cold start").

import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect, createServer } from 'node:net';
import { basename, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { decode, encode } from '@jridgewell/sourcemap-codec';
import { build } from 'esbuild';
import { buildConsoleAssets } from './build-console.mjs';
import { productionNodeArgs } from './deploy-values.mjs';

// Optional MongoDB driver add-ons, loaded only when installed. (Not `socks`: mqtt requires it on every TCP
// connect, and the image has nothing beyond the bundles.)
const OPTIONAL_ADDONS = [
  'kerberos',
  'snappy',
  '@mongodb-js/zstd',
  'mongodb-client-encryption',
  'gcp-metadata',
  'aws4',
  '@aws-sdk/credential-providers',
];

const COMMON = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  sourcemap: 'linked',
  // Stack traces need positions, not the sources' text (which would triple the map).
  sourcesContent: false,
  metafile: true,
  logLevel: 'warning',
  legalComments: 'none',
  // Without comments the bundle is pure ASCII: V8 keeps a script's source in memory, one byte per
  // character, instead of two for the whole file once a single comment holds a character beyond Latin-1
  // (5 MB → 10 MB resident per process). Identifiers and syntax stay as written, for readable stack traces.
  minifyWhitespace: true,
};

const LAUNCHER = fileURLToPath(new URL('./launcher.cjs', import.meta.url));

/**
 * Packages whose entry module requires all of the package as it loads (prom-client, cloudevents), modules that
 * mqtt.js requires on every first connect (its WebSocket builders, its SOCKS proxy support) and one that the MongoDB
 * driver requires at load for a password it may never prepare (saslprep), replaced in the deployables' bundles by a
 * module that loads each export on first use (scripts/build-shims/): what a start does not use is never evaluated.
 */
const LAZY_ENTRIES = {
  name: 'lazy-package-entries',
  setup(pluginBuild) {
    const shim = (file) => fileURLToPath(new URL(`./build-shims/${file}`, import.meta.url));
    pluginBuild.onResolve({ filter: /^prom-client$/ }, () => ({ path: shim('prom-client.cjs') }));
    pluginBuild.onResolve({ filter: /^cloudevents$/ }, () => ({ path: shim('cloudevents.cjs') }));
    // mqtt.js's connect/index.js requires its WebSocket builders (`./ws`) on the first connect, whatever the protocol.
    pluginBuild.onResolve({ filter: /^\.\/ws$/ }, (args) =>
      /[\\/]mqtt[\\/]build[\\/]lib[\\/]connect[\\/]index\.js$/.test(args.importer)
        ? { path: shim('mqtt-ws.cjs') }
        : undefined,
    );
    // Its TCP and TLS builders require the SOCKS proxy support (`./socks`) whatever the connection.
    pluginBuild.onResolve({ filter: /^\.\/socks$/ }, (args) =>
      /[\\/]mqtt[\\/]build[\\/]lib[\\/]connect[\\/](tcp|tls)\.js$/.test(args.importer)
        ? { path: shim('mqtt-socks.cjs') }
        : undefined,
    );
    // The MongoDB driver's SCRAM module requires saslprep, which builds its Unicode tables as it loads.
    pluginBuild.onResolve({ filter: /^@mongodb-js\/saslprep$/ }, (args) =>
      /[\\/]mongodb[\\/]lib[\\/]cmap[\\/]auth[\\/]scram\.js$/.test(args.importer)
        ? { path: shim('saslprep.cjs') }
        : undefined,
    );
  },
};

/**
 * Bundles deployables (`entries`: { name: source file }) into `<outdir>/<name>.bundle.cjs` with a trimmed linked
 * source map, and writes the launcher `<outdir>/<name>.js` that `node` starts. A code cache left from an earlier
 * build is removed (V8 checks a cache only against the source's length). Returns [name, bundle bytes] per entry.
 * The entries must not use top-level await (CommonJS has none): a composition root ends in a promise it hands on.
 */
export async function bundleEntries(entries, outdir) {
  const result = await build({
    ...COMMON,
    entryPoints: Object.fromEntries(Object.entries(entries).map(([name, file]) => [`${name}.bundle`, file])),
    outdir,
    format: 'cjs',
    outExtension: { '.js': '.cjs' },
    // The file is the function Node's CommonJS loader would wrap the module in, so that the launcher compiles the
    // source as read (one copy in memory) rather than a wrapped copy of it.
    banner: { js: '(function (exports, require, module, __filename, __dirname) {' },
    footer: { js: '})' },
    external: OPTIONAL_ADDONS,
    plugins: [LAZY_ENTRIES],
  });
  copyLauncher(outdir);
  return launchEach(result, '.bundle.cjs', outdir, (file, name) => {
    keepCacheOnlyFor(file, name);
    return [
      '// Generated by scripts/build.mjs: the bundle with its code cache (dist/launcher.cjs).',
      `require('./launcher.cjs').launch(require('node:path').join(__dirname, ${JSON.stringify(`${name}.bundle.cjs`)}));`,
    ];
  });
}

/**
 * Puts the launcher in `outdir` with a package.json that makes every `<outdir>/<name>.js` a CommonJS module, whatever
 * the package.json above it says (the repository's is an ES module package).
 */
function copyLauncher(outdir) {
  copyFileSync(LAUNCHER, join(outdir, 'launcher.cjs'));
  writeFileSync(join(outdir, 'package.json'), `${JSON.stringify({ type: 'commonjs' })}\n`);
}

/**
 * For each bundle the build wrote (`extension`): trims its source map to kiot's own sources and writes its
 * launcher `<outdir>/<name>.js` with the lines `launcherLines(file, name)` gives. Returns [name, bundle bytes].
 */
function launchEach(result, extension, outdir, launcherLines) {
  const sizes = [];
  for (const [file, output] of Object.entries(result.metafile.outputs)) {
    if (!file.endsWith(extension)) continue;
    keepOwnMappings(`${file}.map`);
    const name = basename(file, extension);
    writeFileSync(join(outdir, `${name}.js`), `${launcherLines(file, name).join('\n')}\n`);
    sizes.push([name, output.bytes]);
  }
  return sizes;
}

/**
 * Removes the code cache of `bundle` unless it was trained on exactly this bundle, launcher, Node and Node arguments (V8 checks
 * a cache only against the source's length): a build that changes nothing keeps its caches and trains nothing.
 */
function keepCacheOnlyFor(bundle, name) {
  const digest = createHash('sha256')
    .update(readFileSync(bundle))
    // The launcher decides which flags V8 compiles under (it resets the heap flags first).
    .update(readFileSync(LAUNCHER))
    .update(`\0${process.version}\0${nodeArgsOf(name).join(' ')}`)
    .digest('hex');
  const key = existsSync(`${bundle}.cache.sha256`) ? readFileSync(`${bundle}.cache.sha256`, 'utf8') : '';
  if (key !== digest || !existsSync(`${bundle}.cache`)) {
    rmSync(`${bundle}.cache`, { force: true });
    writeFileSync(`${bundle}.cache.sha256`, digest);
  }
}

/** Bundles local tools into `<outdir>/<name>.bundle.mjs` (ES modules) with a launcher that turns source maps on. */
async function bundleTools(entries, outdir) {
  const result = await build({
    ...COMMON,
    entryPoints: Object.fromEntries(Object.entries(entries).map(([name, file]) => [`${name}.bundle`, file])),
    outdir,
    format: 'esm',
    outExtension: { '.js': '.mjs' },
    // CommonJS dependencies call require() for Node built-ins; give the ESM bundle one.
    banner: {
      js: "import { createRequire as __kiotCreateRequire } from 'node:module'; const require = __kiotCreateRequire(import.meta.url);",
    },
    external: [
      '@google-cloud/functions-framework',
      '@google-cloud/functions-framework/*',
      ...OPTIONAL_ADDONS,
      // The browser benchmarks drive Chromium from the repository's node_modules (never part of a deployable).
      'playwright-core',
    ],
  });
  copyLauncher(outdir);
  // Node reads a file's source map when it loads the file, and only if source maps are on by then.
  return launchEach(result, '.bundle.mjs', outdir, (_file, name) => [
    "// Generated by scripts/build.mjs: the heap flags of the command line (the console's manifest gives some) back to",
    "// their defaults as dist/launcher.cjs does when it loads (Node's built-ins keep their code cache), then source maps",
    '// on before the bundle loads. A failure to load it is an unhandled rejection: printed, exit status 1.',
    "require('./launcher.cjs');",
    'process.setSourceMapsEnabled(true);',
    `import(${JSON.stringify(`./${name}.bundle.mjs`)});`,
  ]);
}

// What every deployable's configuration needs to start (as in bench:coldstart), with stores nobody answers on:
// training runs the start and one request, not the work.
const TRAINING_ENV = {
  NODE_ENV: 'production',
  LOG_LEVEL: 'silent',
  MQTT_URL: 'mqtt://127.0.0.1:9',
  REDIS_URL: 'redis://127.0.0.1:9',
  MONGODB_URL: 'mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=500&connectTimeoutMS=500',
  MONGODB_DB: 'kiot_code_cache_training',
  K_SINK: 'http://127.0.0.1:9/',
  DEAD_LETTER_SINK: 'http://127.0.0.1:9/',
  API_KEYS: '[]',
  PROVISIONING_REPLY_KEY: randomBytes(32).toString('base64url'),
  BRIDGE_CLIENT_ID: 'code-cache-training',
  BRIDGE_SHARE_GROUP: 'code-cache-training',
  BRIDGE_SESSION_EXPIRY_S: '60',
  TICK_GATE_COLLECTIONS: 'commands',
};

/** V8 checks its flags: a cache is made with the manifest's Node arguments (knative/deploy-values.json). */
const nodeArgsOf = (name) => (existsSync('knative/deploy-values.json') ? productionNodeArgs(name) : []);

const freePort = () =>
  new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
const listening = (port) =>
  new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
// The request runs the routing and the health check up to where it waits for the (unreachable) stores: that is
// what training needs, not the answer.
const getHealth = (port) =>
  new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/healthz', agent: false, timeout: 300 }, (res) => {
      res.resume();
      res.on('end', resolve);
    });
    req.once('timeout', () => req.destroy());
    req.once('error', resolve);
    req.end();
  });

/**
 * Trains the code cache of a deployable: starts `<outdir>/<name>.js` with the Node arguments of its manifest (a
 * cache made under other V8 flags is ignored), waits until it listens and has taken `GET /healthz` (its stores
 * are unreachable, so the check runs the code a real start runs and then waits), then has the launcher write the
 * cache.
 */
async function trainCodeCache(name, outdir) {
  const port = await freePort();
  const child = spawn(process.execPath, [...nodeArgsOf(name), join(outdir, `${name}.js`)], {
    env: {
      PATH: process.env.PATH ?? '',
      ...TRAINING_ENV,
      PORT: String(port),
      KIOT_CODE_CACHE_TRAIN: '1',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  const deadline = Date.now() + 15_000;
  while (child.exitCode === null && Date.now() < deadline && !(await listening(port))) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  if (child.exitCode === null) await getHealth(port);
  if (child.exitCode === null) child.kill('SIGUSR2');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  const code = await exited;
  clearTimeout(timer);
  if (code !== 0 || !existsSync(join(outdir, `${name}.bundle.cjs.cache`)))
    throw new Error(`training the code cache of ${name} failed (exit ${code}): ${stderr.slice(-1000)}`);
}

/** Trains the code caches of `names` that have none (a bundle the build changed), three at a time. */
export async function trainCodeCaches(names, outdir) {
  const queue = names.filter((name) => !existsSync(join(outdir, `${name}.bundle.cjs.cache`)));
  const worker = async () => {
    for (let name = queue.shift(); name !== undefined; name = queue.shift()) await trainCodeCache(name, outdir);
  };
  await Promise.all([worker(), worker(), worker()]);
}

/**
 * Keeps the mappings of kiot's own sources and drops those of node_modules. Node decodes a whole map when it
 * first formats a stack (`--enable-source-maps`): for a full map of a 3 MB bundle that is ~1 s and +80 MB
 * resident, for kiot's 3 % of it a few milliseconds. Where library code starts, a segment without a source
 * ends the previous mapping, so a frame in a library keeps its bundle position (and its function name)
 * instead of borrowing the line of the kiot code before it.
 */
export function keepOwnMappings(mapFile) {
  const map = JSON.parse(readFileSync(mapFile, 'utf8'));
  const own = map.sources.map((source) => !source.includes('node_modules/'));
  const sourceIndex = [];
  const sources = [];
  map.sources.forEach((source, i) => {
    if (own[i]) sourceIndex[i] = sources.push(source) - 1;
  });
  const nameIndex = new Map();
  const names = [];
  const lines = decode(map.mappings).map((segments) => {
    const kept = [];
    let inLibrary = false;
    for (const segment of segments) {
      if (segment.length === 1 || !own[segment[1]]) {
        if (!inLibrary) kept.push([segment[0]]);
        inLibrary = true;
        continue;
      }
      inLibrary = false;
      const [column, source, line, sourceColumn, name] = segment;
      if (name === undefined) kept.push([column, sourceIndex[source], line, sourceColumn]);
      else {
        if (!nameIndex.has(name)) nameIndex.set(name, names.push(map.names[name]) - 1);
        kept.push([column, sourceIndex[source], line, sourceColumn, nameIndex.get(name)]);
      }
    }
    return kept;
  });
  writeFileSync(mapFile, JSON.stringify({ ...map, sources, names, mappings: encode(lines) }));
}

/** Every entry point of the repository: the deployables, then the console, the local router, simulator, stack and benches. */
function entryPoints() {
  const deployables = {};
  const tools = {};
  const add = (entries, name, file) => {
    if (existsSync(file)) entries[name] = file;
  };
  add(deployables, 'bridge', 'bridge/index.ts');
  add(deployables, 'tick-gate', 'tick-gate/index.ts');
  for (const name of existsSync('functions') ? readdirSync('functions') : [])
    add(deployables, name, join('functions', name, 'index.ts'));
  // The console stays an ES module bundle: its composition root finds its assets through import.meta.url, and it
  // loads neither the framework nor a store driver (docs/performance.md, "Cold start").
  add(tools, 'console', 'console/server/index.ts');
  add(tools, 'router', 'scripts/router/main.ts');
  add(tools, 'simulator', 'scripts/simulator/index.ts');
  add(tools, 'asyncapi', 'scripts/asyncapi/index.ts');
  add(tools, 'stack', 'scripts/stack/main.ts');
  for (const file of existsSync('scripts/bench') ? readdirSync('scripts/bench') : []) {
    if (/^[a-z-]+\.ts$/.test(file)) add(tools, `bench-${file.replace(/\.ts$/, '')}`, join('scripts/bench', file));
  }
  return { deployables, tools };
}

// `node scripts/build.mjs` builds dist/; tests import bundleEntries to build fixtures the same way.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { deployables, tools } = entryPoints();
  const sizes = [...(await bundleEntries(deployables, 'dist')), ...(await bundleTools(tools, 'dist'))];
  await trainCodeCaches(Object.keys(deployables), 'dist');
  // The image's default command (`docker run`, Dockerfile) reads a deployable's Node arguments from here.
  for (const name of [...Object.keys(deployables), ...(tools.console ? ['console'] : [])])
    writeFileSync(`dist/${name}.node-args`, `${nodeArgsOf(name).join(' ')}\n`);
  for (const [name, bytes] of sizes) {
    console.log(`dist/${`${name}.js`.padEnd(27)} ${(bytes / 1024).toFixed(0).padStart(6)} KiB`);
  }
  for (const { file, bytes, gzip } of await buildConsoleAssets('dist/console')) {
    console.log(
      `${file.padEnd(32)} ${(bytes / 1024).toFixed(0).padStart(6)} KiB (${(gzip / 1024).toFixed(0)} KiB gzip)`,
    );
  }
}
