/**
 * Which Redis deployment `REDIS_URL` names. One Secret key carries the whole connection, in the URL forms
 * the Redis clients of other ecosystems use (Lettuce's `redis-sentinel://`, a list of seed nodes):
 *   redis://[user:password@]host[:port][/db]                       one node (ioredis parses it)
 *   redis-sentinel://[user:password@]host[:port],…/master-name[?db=N&sentinelUsername=…&sentinelPassword=…]
 *   redis-cluster://[user:password@]host[:port],…                  seed nodes of a Redis Cluster
 * `rediss…` is the same over TLS. The user and password are the data nodes' (for Sentinel: the master's and
 * replicas'); sentinels that require their own password take it as a query parameter.
 */
export interface HostPort {
  host: string;
  port: number;
}

interface Credentials {
  tls: boolean;
  username?: string;
  password?: string;
}

export type RedisTopology =
  | { kind: 'single'; url: string }
  | (Credentials & {
      kind: 'sentinel';
      sentinels: HostPort[];
      masterName: string;
      db: number;
      sentinelUsername?: string;
      sentinelPassword?: string;
    })
  | (Credentials & { kind: 'cluster'; nodes: HostPort[] });

const SCHEME = /^(rediss?)(?:-(sentinel|cluster))?:\/\/(.*)$/s;
const SENTINEL_PARAMETERS = new Set(['db', 'sentinelUsername', 'sentinelPassword']);

/** Parses `REDIS_URL`; throws an Error that says what is wrong (config validation shows it at start). */
export function parseRedisUrl(value: string): RedisTopology {
  const match = SCHEME.exec(value);
  if (!match) throw new Error('must start with redis://, rediss://, redis-sentinel://, redis-cluster:// (or rediss-…)');
  const [, scheme, mode, rest] = match as unknown as [string, string, string | undefined, string];
  if (!mode) {
    // ioredis parses the one-node form itself; WHATWG URL parsing is enough to catch a typo.
    if (!URL.canParse(value)) throw new Error('is not a URL');
    return { kind: 'single', url: value };
  }
  const { userinfo, hosts, path, query } = authority(rest);
  const credentials: Credentials = { tls: scheme === 'rediss', ...parseUserinfo(userinfo) };
  const seeds = hosts.split(',').map((host) => parseHostPort(host, mode === 'sentinel' ? 26379 : 6379));
  const params = new URLSearchParams(query);
  if (mode === 'cluster') {
    if (path !== '' && path !== '/') throw new Error('redis-cluster:// takes no path (a cluster has only database 0)');
    if ([...params.keys()].length > 0) throw new Error(`redis-cluster:// takes no parameters, got ${query}`);
    return { kind: 'cluster', nodes: seeds, ...credentials };
  }
  const masterName = decodeURIComponent(path.replace(/^\//, ''));
  if (!/^[A-Za-z0-9._-]+$/.test(masterName)) throw new Error('redis-sentinel:// needs the master name as its path');
  for (const key of params.keys()) {
    if (!SENTINEL_PARAMETERS.has(key)) throw new Error(`unknown redis-sentinel:// parameter ${key}`);
  }
  const db = Number(params.get('db') ?? '0');
  if (!Number.isInteger(db) || db < 0) throw new Error('db must be a database number');
  return {
    kind: 'sentinel',
    sentinels: seeds,
    masterName,
    db,
    ...credentials,
    ...optional('sentinelUsername', params.get('sentinelUsername')),
    ...optional('sentinelPassword', params.get('sentinelPassword')),
  };
}

/** Whether `value` is a REDIS_URL this module understands (for zod). */
export function redisUrlProblem(value: string): string | undefined {
  try {
    parseRedisUrl(value);
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

function authority(rest: string) {
  const end = rest.search(/[/?#]/);
  const head = end === -1 ? rest : rest.slice(0, end);
  const tail = end === -1 ? '' : rest.slice(end);
  const at = head.lastIndexOf('@');
  const queryAt = tail.indexOf('?');
  return {
    userinfo: at === -1 ? '' : head.slice(0, at),
    hosts: at === -1 ? head : head.slice(at + 1),
    path: queryAt === -1 ? tail : tail.slice(0, queryAt),
    query: queryAt === -1 ? '' : tail.slice(queryAt + 1),
  };
}

function parseUserinfo(userinfo: string): { username?: string; password?: string } {
  if (userinfo === '') return {};
  const colon = userinfo.indexOf(':');
  const username = decodeURIComponent(colon === -1 ? userinfo : userinfo.slice(0, colon));
  const password = colon === -1 ? undefined : decodeURIComponent(userinfo.slice(colon + 1));
  // `redis://:password@host` (no user) is the classic AUTH form.
  return { ...optional('username', username || null), ...optional('password', password ?? null) };
}

function parseHostPort(text: string, defaultPort: number): HostPort {
  const bracketed = /^\[([0-9A-Fa-f:.]+)\](?::(\d+))?$/.exec(text);
  const plain = /^([A-Za-z0-9.-]+)(?::(\d+))?$/.exec(text);
  const found = bracketed ?? plain;
  if (!found) throw new Error(`"${text}" is not a host[:port]`);
  const port = found[2] === undefined ? defaultPort : Number(found[2]);
  if (port < 1 || port > 65_535) throw new Error(`"${text}" has no valid port`);
  return { host: found[1]!, port };
}

function optional<K extends string>(key: K, value: string | null): { [P in K]?: string } {
  return (value === null ? {} : { [key]: value }) as { [P in K]?: string };
}
