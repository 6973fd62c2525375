/**
 * Every Redis key and channel of command-dispatch. The device id is a hash tag (`{…}`, Redis Cluster
 * spec "Hash tags"), so all of a device's state — presence, the last published delta, the completion
 * channels of its commands, and the shadow hash (shared/shadow.ts) — lives in one slot: one shard of a
 * Cluster serves the device, and a failover there touches only the devices of its slots.
 */
export function commandKeys(prefix: string) {
  const device = (deviceId: string) => `${prefix}cmd:{${deviceId}}`;
  return {
    presence: (deviceId: string) => `${device(deviceId)}:presence`,
    delta: (deviceId: string) => `${device(deviceId)}:delta`,
    /** A pub/sub channel (sharded on a Cluster), not a key: nothing is stored under it. */
    done: (deviceId: string, commandId: string) => `${device(deviceId)}:done:${commandId}`,
  };
}
