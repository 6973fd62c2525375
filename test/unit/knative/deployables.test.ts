import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildBundles } from './lib/build.js';
import { components } from './lib/components.js';
import { type K8sObject, loadManifests, ROOT } from './lib/manifests.js';
import { configSchemaOf, isRequired } from './lib/schemas.js';

// Every workload in knative/ runs a bundle the build makes, with exactly the environment its zod config
// schema knows and needs. The schemas are imported from each capability (functions/<name>/config.ts or
// schema.ts, bridge/config.ts); the build runs first (a lock keeps parallel test files apart).
const manifests = loadManifests();
const configMaps = new Map(
  manifests
    .filter(({ doc }) => doc.kind === 'ConfigMap')
    .map(({ doc }) => [doc.metadata.name, (doc as K8sObject & { data: Record<string, string> }).data]),
);
const sinkBound = new Set(
  manifests
    .filter(({ doc }) => doc.kind === 'SinkBinding')
    .map(({ doc }) => `${doc.spec.subject.kind}/${doc.spec.subject.name}`),
);
/** Runtime variables Node and libuv read themselves, not the app's config. */
const PLATFORM_ENV = new Set(['NODE_OPTIONS', 'UV_THREADPOOL_SIZE']);

interface Workload {
  kind: string;
  name: string;
  bundle: string;
  /** The words between `node` and the bundle in the command (the heap flags). */
  nodeArgs: string[];
  env: {
    name: string;
    value?: string;
    valueFrom?: { configMapKeyRef?: { name: string; key: string }; secretKeyRef?: object; fieldRef?: object };
  }[];
  injected: string[];
}

const workloads: Workload[] = manifests.flatMap(({ doc }): Workload[] => {
  const knative = doc.kind === 'Service' && doc.apiVersion.startsWith('serving.knative.dev/');
  if (!knative && !['StatefulSet', 'Deployment'].includes(doc.kind)) return [];
  const container = doc.spec.template.spec.containers[0];
  // `node [heap flags] dist/<name>.js`: the bundle is the last word.
  const bundle =
    /^dist\/([a-z-]+)\.js$/.exec(container.command?.at(-1) ?? '')?.[1] ?? '(no node … dist/<name>.js command)';
  const injected = [
    ...(knative ? ['PORT'] : []), // Knative sets PORT to the container port
    ...(sinkBound.has(`${doc.kind}/${doc.metadata.name}`) ? ['K_SINK'] : []), // the SinkBinding injects it
  ];
  const nodeArgs: string[] = container.command?.slice(1, -1) ?? [];
  return [{ kind: doc.kind, name: doc.metadata.name, bundle, nodeArgs, env: container.env ?? [], injected }];
});

beforeAll(() => {
  buildBundles();
}, 120_000);

describe('deployables', () => {
  const landed = new Set(components().map((c) => c.name));
  // The console is an ES module bundle with the tools' launcher (scripts/build.mjs): no framework, no code cache.
  const esModules = new Set(['console']);

  it.each(workloads.map((w) => [`${w.kind} ${w.name}`, w] as const))(
    '%s runs a bundle that the build makes',
    (_label, workload) => {
      if (!landed.has(workload.bundle)) return; // its capability has not landed: covered once it has
      // `node dist/<name>.js` is the launcher, which runs dist/<name>.bundle.cjs with its code cache.
      const launcher = join(ROOT, 'dist', `${workload.bundle}.js`);
      expect(existsSync(launcher), launcher).toBe(true);
      const bundle = esModules.has(workload.bundle) ? `${workload.bundle}.bundle.mjs` : `${workload.bundle}.bundle.cjs`;
      expect(readFileSync(launcher, 'utf8')).toContain(
        esModules.has(workload.bundle)
          ? `import("./${bundle}")`
          : `launch(require('node:path').join(__dirname, "${bundle}"))`,
      );
      expect(statSync(join(ROOT, 'dist', bundle)).size).toBeGreaterThan(1_000);
    },
  );

  it("the launchers are CommonJS whatever the repository's package type, so that the heap flags' reset runs before Node compiles its ES module loader", () => {
    expect(JSON.parse(readFileSync(join(ROOT, 'dist', 'package.json'), 'utf8'))).toEqual({ type: 'commonjs' });
  });

  it('every deployable in the repo has a workload', () => {
    const deployed = new Set(workloads.map((w) => w.bundle));
    expect(
      components()
        .map((c) => c.name)
        .filter((name) => !deployed.has(name)),
    ).toEqual([]);
  });

  for (const workload of workloads) {
    it(`${workload.kind} ${workload.name}: sets only variables its config schema knows, every required one, with valid literal values`, async () => {
      if (!landed.has(workload.bundle)) return;
      const schema = await configSchemaOf(workload.bundle);
      expect(schema, `an exported config schema (extending baseConfigSchema) for ${workload.bundle}`).toBeDefined();
      const known = new Set(Object.keys(schema!.shape));
      const set = new Set([...workload.env.map((e) => e.name), ...workload.injected]);
      expect(
        [...set].filter((name) => !known.has(name) && !PLATFORM_ENV.has(name)),
        `not in ${schema!.file} ${schema!.exportName}`,
      ).toEqual([]);
      expect(
        Object.entries(schema!.shape)
          .filter(([name, field]) => isRequired(field) && !set.has(name))
          .map(([name]) => name),
        'required but not set',
      ).toEqual([]);
      for (const env of workload.env) {
        const cm = env.valueFrom?.configMapKeyRef;
        const value = env.value ?? (cm ? configMaps.get(cm.name)?.[cm.key] : undefined);
        const field = schema!.shape[env.name];
        if (value === undefined || !field) continue;
        expect(field.safeParse(value).success, `${env.name}=${value}`).toBe(true);
      }
    });
  }

  it('the bundles require nothing at run time but Node built-ins (the image installs no node_modules)', () => {
    const allowed = new RegExp(
      `^(${[
        'node:',
        'kerberos$|snappy$|@mongodb-js/zstd$|mongodb-client-encryption$|gcp-metadata$|aws4$|@aws-sdk/credential-providers$',
        'supports-color$|bufferutil$|utf-8-validate$|ajv/dist/runtime/ucs2length$',
      ].join('|')})`,
    );
    // (the mongodb add-ons, and debug/ws optional add-ons that esbuild leaves inside try { require() }: absent is fine;
    // not socks, which mqtt requires on every TCP connect: the bridge died in the image without it; ajv's code
    // generator only writes its require into the text of code it would generate)
    const builtins = new Set([
      'fs',
      'path',
      'os',
      'crypto',
      'http',
      'https',
      'net',
      'tls',
      'url',
      'util',
      'stream',
      'events',
      'zlib',
      'dns',
      'child_process',
      'worker_threads',
      'buffer',
      'string_decoder',
      'querystring',
      'timers',
      'assert',
      'async_hooks',
      'perf_hooks',
      'diagnostics_channel',
      'process',
      'module',
      'v8',
      'vm',
      'readline',
      'http2',
      'dgram',
      'tty',
      'constants',
      'punycode',
      'cluster',
      'domain',
      'inspector',
      'console',
      'sqlite',
      'test',
      'trace_events',
      'wasi',
      'sys',
    ]);
    for (const name of new Set(workloads.map((w) => w.bundle))) {
      if (!landed.has(name) || esModules.has(name)) continue;
      const text = readFileSync(join(ROOT, 'dist', `${name}.bundle.cjs`), 'utf8');
      const specifiers = new Set<string>();
      // A CommonJS bundle keeps an external as `require("…")`, or `import("…")` where the source had one.
      for (const pattern of [/\brequire\(["']([^"']+)["']\)/g, /\bimport\(["']([^"']+)["']\)/g]) {
        for (const match of text.matchAll(pattern)) if (!/^[./]/.test(match[1]!)) specifiers.add(match[1]!);
      }
      const outside = [...specifiers].filter((s) => !allowed.test(s) && !builtins.has(s.split('/')[0]!));
      expect(outside, `dist/${name}.bundle.cjs`).toEqual([]);
      // The scan sees the built-ins every bundle requires (a vacuous pass would prove nothing).
      expect([...specifiers], `dist/${name}.bundle.cjs`).toEqual(expect.arrayContaining(['http', 'net']));
    }
  });

  it("every bundle's code cache is accepted by V8 under the Node arguments of its manifest's command", () => {
    // V8 ignores a cache made under other flags (the heap flags are some) or for another source: the build trains
    // each cache with the manifest's `node <nodeArgs>` (scripts/build.mjs), and this checks it holds.
    // As the launcher does first (scripts/launcher.cjs): the heap flags, once they have configured the heap, are set
    // back to their defaults, so V8 compiles (and checks the cache) under its default flag hash.
    const accepted =
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the template literal belongs to the child's code
      'for (const a of process.execArgv) { const f = /^--([a-z-]+-space-size)=\\d+$/.exec(a)?.[1]; if (f) require("node:v8").setFlagsFromString(`--${f}=0`); }' +
      "const { Script } = require('node:vm'); const fs = require('node:fs'); const f = process.argv[1];" +
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the template literal belongs to the child's code
      "const s = new Script(fs.readFileSync(f, 'utf8'), { filename: f, cachedData: fs.readFileSync(`${f}.cache`) });" +
      'process.stdout.write(String(!s.cachedDataRejected));';
    for (const workload of workloads) {
      if (!landed.has(workload.bundle) || esModules.has(workload.bundle)) continue;
      const bundle = join(ROOT, 'dist', `${workload.bundle}.bundle.cjs`);
      const result = spawnSync(process.execPath, [...workload.nodeArgs, '-e', accepted, bundle], {
        env: { PATH: process.env.PATH ?? '' },
        encoding: 'utf8',
      });
      expect(`${result.stdout}${result.stderr}`, `${workload.name} (node ${workload.nodeArgs.join(' ')})`).toBe('true');
    }
  });

  it('the bundles are pure ASCII, so V8 keeps their source at one byte per character', () => {
    for (const name of new Set(workloads.map((w) => w.bundle))) {
      if (!landed.has(name)) continue;
      const file = esModules.has(name) ? `${name}.bundle.mjs` : `${name}.bundle.cjs`;
      const text = readFileSync(join(ROOT, 'dist', file), 'utf8');
      // biome-ignore lint/suspicious/noControlCharactersInRegex: the range names everything beyond ASCII
      const wide = /[^\x00-\x7f]/.exec(text);
      expect(
        wide
          ? `${JSON.stringify(wide[0])} at ${wide.index}: ${text.slice(Math.max(0, wide.index - 40), wide.index + 40)}`
          : 'ascii',
        `dist/${file}`,
      ).toBe('ascii');
    }
  });
});
