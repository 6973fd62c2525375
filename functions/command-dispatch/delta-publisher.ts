import type { Emitter } from '../../shared/emitter.js';
import type { RedisHandle } from '../../shared/redis.js';
import { withRedis } from '../../shared/redis.js';
import type { JsonObject } from '../../shared/shadow.js';
import { MQTT_PUBLISH_TYPE } from './delivery.js';
import { commandKeys } from './redis-keys.js';

/** Where a device finds what it still has to change (docs/architecture.md, retained). */
export const desiredTopic = (deviceId: string) => `devices/${deviceId}/state/desired`;

/** The delta last published per device, so an unchanged delta is not published again on every report. */
export interface DeltaMemo {
  last(deviceId: string): Promise<string | null>;
  remember(deviceId: string, json: string): Promise<void>;
}

export function createDeltaMemo(redis: RedisHandle, prefix: string): DeltaMemo {
  const key = commandKeys(prefix).delta;
  return {
    last: (deviceId) => withRedis(async () => (await redis.client()).get(key(deviceId))),
    remember: (deviceId, json) => withRedis(async () => void (await (await redis.client()).set(key(deviceId), json))),
  };
}

/**
 * Publishes the delta retained on `devices/{id}/state/desired` when it differs from the last one
 * published. An empty delta clears the retained message: a zero-byte retained PUBLISH removes it
 * (MQTT 3.1.1 §3.3.1.3, MQTT 5 §3.3.1.3), and a connected device receives that empty message as
 * "nothing left to do". Returns whether it published.
 */
export async function publishDelta(
  deviceId: string,
  delta: JsonObject,
  deps: { emitter: Emitter; deltas: DeltaMemo },
): Promise<boolean> {
  const json = JSON.stringify(delta);
  const last = await deps.deltas.last(deviceId);
  const empty = Object.keys(delta).length === 0;
  // Nothing published before and nothing to do: no retained message to clear.
  if (last === json || (last === null && empty)) return false;
  await deps.emitter.emit({
    type: MQTT_PUBLISH_TYPE,
    subject: deviceId,
    data: { topic: desiredTopic(deviceId), payload: empty ? '' : delta, qos: 1, retain: true },
  });
  await deps.deltas.remember(deviceId, json);
  return true;
}
