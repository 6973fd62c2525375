import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { productionNodeArgs } from '../../../scripts/deploy-values.mjs';
import { buildBundles } from './lib/build.js';
import { components } from './lib/components.js';
import { ROOT } from './lib/manifests.js';

// No Docker engine here: the Dockerfile's structure instead. Stages, the build command, a small Node 20
// runtime without node_modules (the bundles hold every dependency), a non-root user, and every
// path it copies present after `npm run build` and not excluded by .dockerignore.
interface Stage {
  from: string;
  name?: string;
  instructions: { op: string; args: string }[];
}

function parseDockerfile(text: string): { args: Record<string, string>; stages: Stage[] } {
  const lines = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const line of lines) {
    const [, op, rest] = /^(\w+)\s+(.*)$/.exec(line) ?? [];
    if (!op) continue;
    if (op.toUpperCase() === 'FROM') {
      const [, image, name] = /^(\S+)(?:\s+AS\s+(\S+))?/i.exec(rest!)!;
      stages.push({ from: image!.replace(/\$\{(\w+)\}/g, (_m, v: string) => args[v] ?? ''), name, instructions: [] });
    } else if (stages.length === 0 && op.toUpperCase() === 'ARG') {
      const [key, value] = rest!.split('=');
      args[key!] = value ?? '';
    } else {
      stages[stages.length - 1]?.instructions.push({ op: op.toUpperCase(), args: rest! });
    }
  }
  return { args, stages };
}

const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const { stages } = parseDockerfile(text);
const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));
const runtime = stages[stages.length - 1]!;
const ops = (stage: Stage, op: string) => stage.instructions.filter((i) => i.op === op).map((i) => i.args);

/** Whether .dockerignore keeps `path` out of the build context (its last matching rule wins). */
function ignored(path: string): boolean {
  let out = false;
  for (const rule of ignore) {
    const negate = rule.startsWith('!');
    const pattern = (negate ? rule.slice(1) : rule).replace(/^\/+/, '');
    const regex = new RegExp(
      `^${pattern
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*\*\//g, '(?:.*/)?')
        .replace(/\*/g, '[^/]*')}(?:/.*)?$`,
    );
    if (regex.test(path)) out = !negate;
  }
  return out;
}

beforeAll(() => {
  buildBundles();
}, 120_000);

describe('Dockerfile', () => {
  it('has a build stage that runs npm ci and npm run build, and a Node 20 runtime stage', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const build = stages.find((s) => s.name === 'build')!;
    const runs = ops(build, 'RUN').join('\n');
    expect(runs).toMatch(/npm ci/);
    expect(runs).toMatch(/npm run build/);
    expect(runtime.from).toMatch(
      /^node:20(\.\d+)*-((bookworm|bullseye|trixie)-)?(alpine|slim)|^gcr\.io\/distroless\/nodejs20/,
    );
    expect(runtime.name).toBe('runtime');
  });

  it('runs as a non-root numeric user in the runtime stage', () => {
    const users = ops(runtime, 'USER');
    expect(users.length).toBeGreaterThanOrEqual(1);
    const user = users[users.length - 1]!.split(':')[0]!;
    expect(user).toMatch(/^\d+$/);
    expect(Number(user)).toBeGreaterThan(0);
  });

  it('copies into the runtime only dist/ from the build stage: no node_modules, no package.json', () => {
    const copies = ops(runtime, 'COPY');
    expect(copies.every((c) => /--from=build\b/.test(c))).toBe(true);
    const targets = copies.map((c) => c.split(/\s+/).at(-1));
    expect(targets).toEqual(['./dist']);
    expect(copies.join(' ')).not.toMatch(/node_modules/);
  });

  it("keeps the launchers' dist/package.json (CommonJS) and dist/launcher.cjs when it removes the local tools", () => {
    const build = stages.find((s) => s.name === 'build')!;
    const removed = ops(build, 'RUN')
      .join(' ')
      .split('&&')
      .flatMap((command) => /^\s*rm\s+(?:-\w+\s+)*(.*)$/.exec(command)?.[1]?.trim().split(/\s+/) ?? []);
    expect(removed.length).toBeGreaterThan(0);
    const glob = (pattern: string) =>
      new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);
    for (const kept of ['dist/package.json', 'dist/launcher.cjs', 'dist/console.js', 'dist/console.bundle.mjs'])
      expect(
        removed.filter((pattern) => glob(pattern).test(kept)),
        kept,
      ).toEqual([]);
    expect(removed.some((pattern) => glob(pattern).test('dist/router.bundle.mjs'))).toBe(true);
    // That the bundles require nothing but Node's built-ins is checked on the built bundles: deployables.test.ts.
  });

  it('every path the build stage copies exists and is in the build context', () => {
    const build = stages.find((s) => s.name === 'build')!;
    for (const copy of ops(build, 'COPY')) {
      const parts = copy.split(/\s+/).filter((p) => !p.startsWith('--'));
      for (const source of parts.slice(0, -1)) {
        expect(existsSync(join(ROOT, source)), source).toBe(true);
        expect(ignored(source), `${source} is excluded by .dockerignore`).toBe(false);
      }
    }
    expect(ignored('node_modules')).toBe(true);
    expect(ignored('dist')).toBe(true);
    expect(ignored('.git')).toBe(true);
  });

  it('the build stage has every source a deployable imports, and the build makes every deployable the manifests run', () => {
    const build = stages.find((s) => s.name === 'build')!;
    const copied = ops(build, 'COPY').flatMap((c) =>
      c
        .split(/\s+/)
        .filter((p) => !p.startsWith('--'))
        .slice(0, -1),
    );
    for (const component of components()) {
      const top = relative(ROOT, component.dir).split('/')[0]!;
      expect(copied, component.name).toContain(top);
      expect(existsSync(join(ROOT, 'dist', `${component.name}.js`)), `dist/${component.name}.js`).toBe(true);
    }
    // Sources outside the copied folders would break the image build: shared/ is the only other import root.
    for (const component of components()) {
      const result = spawnSync('grep', ['-rhoE', "from '(\\.\\./)+[a-z-]+/", component.dir], { encoding: 'utf8' });
      const roots = new Set([...result.stdout.matchAll(/from '(?:\.\.\/)+([a-z-]+)\//g)].map((m) => m[1]!));
      for (const root of roots)
        if (!['shared', 'functions', 'bridge', 'tick-gate'].includes(root) && component.name !== root)
          expect(copied, `${component.name} imports ${root}/`).toContain(root);
    }
  });

  it("the runtime default command picks the deployable by KIOT_DEPLOYABLE and runs it with its manifest's Node arguments", () => {
    const cmd = JSON.parse(ops(runtime, 'CMD').at(-1)!) as string[];
    expect(cmd.slice(0, 2)).toEqual(['sh', '-c']);
    expect(cmd[2]).toMatch(/KIOT_DEPLOYABLE/);
    expect(ops(runtime, 'ENV').join()).toMatch(/NODE_ENV=production/);
    // The command as a shell runs it in the image, for each deployable: `node <nodeArgs> dist/<name>.js`, the
    // words of its manifest's command (the code cache was trained under those flags).
    for (const component of components()) {
      const result = spawnSync('sh', ['-c', cmd[2]!.replace(/\bexec node\b/, 'echo node')], {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? '', KIOT_DEPLOYABLE: component.name },
        encoding: 'utf8',
      });
      expect(result.stderr, component.name).toBe('');
      expect(result.stdout.trim().split(/\s+/), component.name).toEqual([
        'node',
        ...productionNodeArgs(component.name),
        `dist/${component.name}.js`,
      ]);
    }
  });
});
