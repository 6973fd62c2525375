import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

export interface LuaScript {
  run(client: Redis, keys: string[], args: (string | number)[]): Promise<unknown>;
}

/**
 * A Lua script sent once and then called by its SHA1 (Redis EVALSHA: the hot path does not ship the
 * script text with every call). A `NOSCRIPT` answer (a restarted or failed-over Redis) loads it again.
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
