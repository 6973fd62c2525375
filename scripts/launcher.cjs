// Starts a deployable's CommonJS bundle (dist/<name>.bundle.cjs) the way Node's own loader would, with two
// differences that make a cold start cheap (docs/performance.md, "Cold start"); scripts/build.mjs copies this
// file into dist/ and writes `dist/<name>.js`, which calls `launch`. CommonJS, as the launchers are (dist/package.json):
// an ES module entry would have Node compile its ES module loader before this file could reset the heap flags (below).
// 1. V8's code cache: the bundle is compiled through vm.Script with the bytecode the build recorded
//    (dist/<name>.bundle.cjs.cache, made by running the bundle once: `train`), so V8 neither parses the
//    3 MB of JavaScript nor compiles the functions a start runs. Node 20 has no module.enableCompileCache;
//    V8 checks the cache against the source and its own flags and ignores one that does not match.
// 2. Source maps only when a stack is read: Node's --enable-source-maps measures every line of the bundle
//    when it loads it; here the trimmed map (kiot's own sources) is read the first time a stack trace is
//    formatted, and kiot's frames name the TypeScript sources.
'use strict';

// The heap flags of the command line (`node --max-old-space-size=… --initial-old-space-size=… dist/<name>.js`, the
// manifests' nodeArgs) have configured the heap by now, and V8 reads them nowhere else. Set back to their defaults,
// they leave V8's flag hash as it is without flags: Node's own code cache for its built-in modules is keyed on that
// hash, and under any non-default flag every built-in required from here on (http, net, crypto, zlib…) was compiled
// from source, ~50 ms of a start (docs/performance.md, "Cold start"). The heap keeps its cap and initial size
// (v8.getHeapStatistics().heap_size_limit); the bundle's code cache is trained and read under the same reset. First
// of all, before any other built-in is required: what loads before the reset misses Node's cache (node:v8 itself,
// and the streams it requires, do).
const { setFlagsFromString } = require('node:v8');

const HEAP_FLAG = /^--(max-old-space-size|initial-old-space-size|max-semi-space-size|min-semi-space-size)=\d+$/;
for (const arg of process.execArgv) {
  const flag = HEAP_FLAG.exec(arg)?.[1];
  if (flag) setFlagsFromString(`--${flag}=0`);
}

const { isAscii } = require('node:buffer');
const { readFileSync, renameSync, writeFileSync } = require('node:fs');
const { createRequire, SourceMap } = require('node:module');
const { dirname, resolve } = require('node:path');
const { constants, Script } = require('node:vm');

/** Runs the bundle `file` (an absolute path) as a CommonJS module, compiled with its code cache when V8 accepts it. */
function launch(file) {
  if (process.env.KIOT_CPU_PROF) profileUntilFirstSuccess(process.env.KIOT_CPU_PROF);
  mapStacksOnRead(file, `${file}.map`);
  const cacheFile = `${file}.cache`;
  let cachedData;
  try {
    cachedData = readFileSync(cacheFile);
  } catch {
    // No cache (a test's own bundle, a build that could not train): V8 compiles the source.
  }
  // The bundle is the module's wrapper function (scripts/build.mjs): compiled as read, one copy of the source. The
  // build writes it in ASCII, which decodes as Latin-1 straight into V8's one-byte string: UTF-8 decoding of the
  // 3–5 MB took twice as long.
  const bytes = readFileSync(file);
  const script = new Script(bytes.toString(isAscii(bytes) ? 'latin1' : 'utf8'), {
    filename: file,
    cachedData,
    importModuleDynamically: constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  });
  if (process.env.KIOT_CODE_CACHE_TRAIN === '1') {
    // scripts/build.mjs trains the cache: after the bundle has started (and answered a request), it sends
    // SIGUSR2, and the cache written then holds the bytecode of every function the start ran.
    process.once('SIGUSR2', () => {
      writeFileSync(`${cacheFile}.tmp`, script.createCachedData());
      renameSync(`${cacheFile}.tmp`, cacheFile);
      process.exit(0);
    });
  }
  // The bundle requires only Node's built-ins (and, inside try, optional add-ons that are absent).
  const bundleModule = { exports: {}, id: file, filename: file, loaded: false };
  const wrapper = script.runInThisContext();
  wrapper.call(bundleModule.exports, bundleModule.exports, createRequire(file), bundleModule, file, dirname(file));
  bundleModule.loaded = true;
}

/**
 * KIOT_CPU_PROF=<file>: a CPU profile of the start, from here (before the bundle is read) to the first 2xx response
 * the process sends (what bench:coldstart measures), written to `file` (open it in Chrome's DevTools or speedscope;
 * docs/performance.md, "Cold start"). Node's --cpu-prof would run to the exit, and a flag of its own changes nothing
 * V8 checks a code cache against. Unset, nothing here is loaded.
 */
function profileUntilFirstSuccess(profileFile) {
  const { Session } = require('node:inspector');
  const { ServerResponse } = require('node:http');
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: 100 });
  session.post('Profiler.start');
  const end = ServerResponse.prototype.end;
  ServerResponse.prototype.end = function endAndProfile(...args) {
    if (this.statusCode >= 200 && this.statusCode < 300) {
      ServerResponse.prototype.end = end;
      session.post('Profiler.stop', (error, result) => {
        if (!error) writeFileSync(profileFile, JSON.stringify(result.profile));
        session.disconnect();
      });
    }
    return end.apply(this, args);
  };
}

/**
 * Formats stack traces as V8 does, with the bundle's frames mapped to the TypeScript sources through the
 * source map next to it. The map is read on the first stack formatted, never at start; frames without a
 * mapping (library code, which the build's map leaves out) keep their bundle position.
 */
function mapStacksOnRead(file, mapFile) {
  let map;
  const sourceMap = () => {
    if (map === undefined) {
      try {
        map = new SourceMap(JSON.parse(readFileSync(mapFile, 'utf8')));
      } catch {
        map = null;
      }
    }
    return map;
  };
  const base = dirname(mapFile);
  const frame = (site) => {
    const text = site.toString();
    if (site.getFileName() !== file) return text;
    const line = site.getLineNumber();
    const column = site.getColumnNumber();
    const entry = sourceMap()?.findEntry(line - 1, column - 1);
    if (!entry?.originalSource) return text;
    const position = `${file}:${line}:${column}`;
    const original = `${resolve(base, entry.originalSource)}:${entry.originalLine + 1}:${entry.originalColumn + 1}`;
    return text.replace(position, original);
  };
  Error.prepareStackTrace = (error, sites) => {
    const head = errorHead(error);
    // Node's domain module formats a stack as it loads (where it was first required; the functions framework
    // requires it at every start) that nobody reads unless domains are misused: not worth reading the map for.
    const format = sites[0]?.getFileName() === 'node:domain' ? (site) => site.toString() : frame;
    return sites.length === 0 ? head : `${head}\n${sites.map((site) => `    at ${format(site)}`).join('\n')}`;
  };
}

/** The first line of a stack, as V8 writes it: `Name: message`, or only the name when there is no message. */
function errorHead(error) {
  try {
    return Error.prototype.toString.call(error);
  } catch {
    return '<error>';
  }
}

module.exports = { launch };
