/**
 * Every Redis key of this capability. The device id is a hash tag (`{…}`, Redis Cluster spec "Hash
 * tags"), so the keys one Lua script touches for a device always live in one slot.
 */
export function redisKeys(prefix: string) {
  const device = (deviceId: string) => `${prefix}:{${deviceId}}`;
  return {
    dedup: (deviceId: string, eventId: string) => `${device(deviceId)}:event:${eventId}`,
    bucket: (deviceId: string) => `${device(deviceId)}:rate`,
    presence: (deviceId: string) => `${device(deviceId)}:presence`,
    shadow: (deviceId: string) => `${device(deviceId)}:shadow`,
    alert: (deviceId: string, ruleId: string) => `${device(deviceId)}:alert:${ruleId}`,
  };
}

export type RedisKeys = ReturnType<typeof redisKeys>;
