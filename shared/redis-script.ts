import { createHash } from 'node:crypto';
import calculateSlot from 'cluster-key-slot';
import { Cluster } from 'ioredis';
import type { RedisClient } from './redis.js';

export interface LuaScript {
  /**
   * Runs the script over `keys`. On a Cluster the keys may lie in several slots if one master serves them all
   * (group them with `groupsByNode`, shared/redis.ts): the call then goes to that master as a script declared
   * with `allow-cross-slot-keys` (below).
   */
  run(client: RedisClient, keys: string[], args: (string | number)[]): Promise<unknown>;
}

/**
 * The same script for keys of several slots on one Cluster master. Redis refuses a command whose declared keys
 * span slots (CROSSSLOT) even with the flag, but a script with the flag `allow-cross-slot-keys` (Redis 7.0,
 * "Script flags") may touch keys of every slot its node serves. So the call declares one key, which routes it
 * to its master, and passes the whole key list first in ARGV: `n, key1..keyn, args…`; this prologue rebinds
 * KEYS and ARGV to them, so the body reads as on one node.
 */
const ON_ONE_NODE = `#!lua flags=allow-cross-slot-keys
local KEYS, ARGV = (function(all)
  local n, keys, args = tonumber(all[1]), {}, {}
  for i = 2, n + 1 do keys[#keys + 1] = all[i] end
  for i = n + 2, #all do args[#args + 1] = all[i] end
  return keys, args
end)(ARGV)
`;

/**
 * The probe, unless the script does without (`LuaScriptOptions.probe`): a key the node does not serve (a slot
 * moved since the client's map, a Cluster down) must fail the call before any write, so that a refused call has
 * changed nothing (Redis does not roll a script back, "EVAL" docs, "Error handling"). It reads (EXISTS) one key
 * per hash tag — keys of one tag share a slot (Redis Cluster spec, "Hash tags": the text between the first `{`
 * and the next `}`, if not empty, else the whole key) — so a batch's several keys per device cost one command
 * per device, not one per key.
 */
const PROBE = `do
  local probed = {}
  for i = 1, #KEYS do
    local key = KEYS[i]
    local open = string.find(key, '{', 1, true)
    local close = open and string.find(key, '}', open + 1, true)
    local tag = (close and close > open + 1) and string.sub(key, open + 1, close - 1) or key
    if not probed[tag] then
      probed[tag] = true
      redis.call('EXISTS', key)
    end
  end
end
`;

export interface LuaScriptOptions {
  /**
   * false: the Cluster variant skips the probe, each EXISTS a command per device and call. Only for a script
   * that itself reads a key of every hash tag before its first write (the read fails the call as the probe
   * would), or one whose call cut short after some writes is harmless (idempotent writes that the 503's retry
   * repeats, or best effort); the script's comment says which. Default true.
   */
  probe?: boolean;
}

/** A script by SHA1 with its source, for `EVALSHA` and the `EVAL` fallback. */
function bySha(source: string) {
  return { source, sha: createHash('sha1').update(source).digest('hex') };
}

/**
 * A Lua script sent once and then called by its SHA1 (Redis EVALSHA: the hot path does not ship the
 * script text with every call). A `NOSCRIPT` answer (a restarted or failed-over node, or a Cluster node
 * that never saw it) loads it again. Every key a script touches must be in `keys`; on a Cluster they share a
 * hash slot (a `{device}` hash tag) or at least a master (`groupsByNode`).
 */
export function luaScript(source: string, options: LuaScriptOptions = {}): LuaScript {
  const plain = bySha(source);
  const onOneNode = bySha(ON_ONE_NODE + (options.probe === false ? '' : PROBE) + source);
  async function call(
    client: RedisClient,
    script: { source: string; sha: string },
    declared: string[],
    args: (string | number)[],
  ) {
    try {
      return await client.evalsha(script.sha, declared.length, ...declared, ...args);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return client.eval(script.source, declared.length, ...declared, ...args);
    }
  }
  return {
    run(client, keys, args) {
      if (client instanceof Cluster && keys.length > 1 && calculateSlot.generateMulti(keys) < 0)
        return call(client, onOneNode, [keys[0]!], [keys.length, ...keys, ...args]);
      return call(client, plain, keys, args);
    },
  };
}
