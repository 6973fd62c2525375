import { createHash } from 'node:crypto';
import type { RedisClient } from './redis.js';

export interface LuaScript {
  run(client: RedisClient, keys: string[], args: (string | number)[]): Promise<unknown>;
}

/**
 * A Lua script sent once and then called by its SHA1 (Redis EVALSHA: the hot path does not ship the
 * script text with every call). A `NOSCRIPT` answer (a restarted or failed-over node, or a Cluster node
 * that never saw it) loads it again. Every key a script touches must be in `keys` and, on a Cluster, in
 * one hash slot (the callers' keys share a `{device}` hash tag).
 */
export function luaScript(source: string): LuaScript {
  const sha = createHash('sha1').update(source).digest('hex');
  return {
    async run(client, keys, args) {
      try {
        return await client.evalsha(sha, keys.length, ...keys, ...args);
      } catch (error) {
        if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
        return client.eval(source, keys.length, ...keys, ...args);
      }
    },
  };
}
