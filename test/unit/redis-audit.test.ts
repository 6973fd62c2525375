import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { REDIS_SUITES } from '../../vitest.config.js';

// docs/redis.md audits every place that talks to Redis for one node, Sentinel and Cluster. This keeps the audit
// true as the code moves: a new Redis user needs a row, a row names suites that run on all three deployments,
// and the constructs that break on a Cluster (several keys in one call, raw pub/sub, keyspace-wide commands)
// stay where the audit accounts for them.
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PRODUCT_DIRS = ['functions', 'shared', 'bridge', 'tick-gate', 'console', 'scripts'];

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) return path === 'scripts/bench' || entry.name === 'node_modules' ? [] : sources(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const USES_REDIS = /from '(ioredis|[^']*\/redis(-script|-pubsub)?\.js)'/;
const users = PRODUCT_DIRS.flatMap(sources).filter((path) => USES_REDIS.test(read(path)));

/** `a/{b,c}.ts` → `a/b.ts`, `a/c.ts` (the one brace group vitest.config.ts's patterns use). */
const expand = (pattern: string) => {
  const group = /\{([^}]*)\}/.exec(pattern);
  return group ? group[1]!.split(',').map((name) => pattern.replace(group[0], name)) : [pattern];
};
const onEveryTopology = new Set(REDIS_SUITES.flatMap(expand));

interface Row {
  module: string;
  text: string;
  suites: string[];
}
const rows: Row[] = read('docs/redis.md')
  .split('\n')
  .filter((line) => line.startsWith('| `'))
  .map((line) => {
    const cells = line.split(' | ');
    return {
      module: /`([^`]+)`/.exec(cells[0]!)![1]!,
      text: line,
      suites: [...cells.at(-1)!.matchAll(/`([^`]+\.test\.ts)`/g)].map((m) => m[1]!),
    };
  });

const MULTI_KEY_COMMANDS = new RegExp(
  `\\.(${[
    'mget|mset|msetnx|del|unlink|exists|touch|rename|renamenx|smove',
    'sdiff|sinter|sunion|sdiffstore|sinterstore|sunionstore|zunionstore|zinterstore|zdiffstore|zunion|zinter|zdiff',
    'lmove|blmove|rpoplpush|brpoplpush|blpop|brpop|copy|pfcount|pfmerge|watch',
  ].join('|')})\\(`,
  'g',
);

/** `text` split at its top-level commas (brackets balanced); stops at an unbalanced closing bracket. */
function topLevelParts(text: string): string[] {
  const parts: string[] = [''];
  let depth = 0;
  for (const char of text) {
    if ('([{'.includes(char)) depth += 1;
    if (')]}'.includes(char)) depth -= 1;
    if (depth < 0) break;
    if (char === ',' && depth === 0) parts.push('');
    else parts[parts.length - 1] += char;
  }
  return parts.map((part) => part.trim());
}

/** The second argument of each `….run(client, keys, args)` (a Lua script call). */
const scriptKeyArguments = (source: string) =>
  [...source.matchAll(/\.run\(/g)]
    .map((match) => topLevelParts(source.slice(match.index + match[0].length)))
    .filter((args) => args.length >= 2)
    .map((args) => args[1]!);

/** `[oneKey(…)]`: an array literal of one element, no spread. */
const isOneKey = (argument: string) =>
  argument.startsWith('[') &&
  argument.endsWith(']') &&
  !argument.includes('...') &&
  topLevelParts(argument.slice(1, -1)).length === 1;

describe('docs/redis.md: the audit of every Redis user', () => {
  it('has a row for every module that talks to Redis, and none for one that does not', () => {
    expect(users.length).toBeGreaterThan(10);
    expect(rows.map((row) => row.module).sort()).toEqual([...users].sort());
  });

  it('names for every module suites that exist and run on one node, Cluster and Sentinel', () => {
    for (const row of rows) {
      expect(row.suites.length, row.module).toBeGreaterThan(0);
      for (const suite of row.suites) {
        expect(existsSync(join(ROOT, suite)), suite).toBe(true);
        expect(onEveryTopology.has(suite) || suite.startsWith('test/integration/redis/failover-'), suite).toBe(true);
      }
      expect(
        row.suites.some((suite) => onEveryTopology.has(suite)),
        `${row.module}: one suite in REDIS_SUITES`,
      ).toBe(true);
    }
  });

  it('accounts for every multi-key command and every script call over several keys', () => {
    for (const row of rows) {
      const source = read(row.module);
      for (const [, command] of source.matchAll(MULTI_KEY_COMMANDS))
        expect(row.text, `${row.module}: ${command!.toUpperCase()}`).toMatch(
          new RegExp(`multi-key:[^|]*${command!.toUpperCase()}`),
        );
      const multiKeyScripts = scriptKeyArguments(source).filter((keys) => !isOneKey(keys));
      if (multiKeyScripts.length > 0) expect(row.text, `${row.module}: ${multiKeyScripts[0]}`).toMatch(/multi-key:/);
    }
  });

  it('keeps raw pub/sub, raw scripts and keyspace-wide commands out of product code', () => {
    for (const path of users) {
      const source = read(path);
      if (path !== 'shared/redis-pubsub.ts') {
        expect(source, path).not.toMatch(/\b(ssubscribe|spublish|sunsubscribe)\(/);
        expect(source, path).not.toMatch(/\bclient\.(publish|subscribe|unsubscribe)\(/);
        expect(source, path).not.toMatch(/(?<!channelsOf)\(await \w+\.client\(\)\)\.(publish|subscribe|unsubscribe)\(/);
      }
      if (path !== 'shared/redis-script.ts') expect(source, path).not.toMatch(/\.(eval|evalsha|eval_ro|fcall)\(/);
      expect(source, path).not.toMatch(/\.(scan|scanStream|sscan|flushall|flushdb|psubscribe|punsubscribe)\(/);
      expect(source, path).not.toMatch(/(?<!Object)\.keys\(\s*[^)\s]/);
    }
  });

  it('recognizes a script call over several keys', () => {
    expect(scriptKeyArguments('S.run(await r.client(), [keys.alert(deviceId, ruleId)], [seq])')).toEqual([
      '[keys.alert(deviceId, ruleId)]',
    ]);
    expect(isOneKey('[keys.alert(deviceId, ruleId)]')).toBe(true);
    expect(isOneKey('[keys.online, keys.presenceSince]')).toBe(false);
    expect(isOneKey('[...marks, ...buckets.keys()]')).toBe(false);
    expect(isOneKey('group.map((update) => keys.presence(update.deviceId))')).toBe(false);
  });
});
