/**
 * Every Redis key of this capability. The device id is a hash tag (`{…}`, Redis Cluster spec "Hash
 * tags"), so the keys one Lua script touches for a device always live in one slot. The device's
 * shadow hash, `{prefix}:{id}:shadow`, is shared/shadow.ts's (`shadowKey`).
 */
export function redisKeys(prefix: string) {
  const device = (deviceId: string) => `${prefix}:{${deviceId}}`;
  return {
    dedup: (deviceId: string, eventId: string) => `${device(deviceId)}:event:${eventId}`,
    bucket: (deviceId: string) => `${device(deviceId)}:rate`,
    presence: (deviceId: string) => `${device(deviceId)}:presence`,
    alert: (deviceId: string, ruleId: string) => `${device(deviceId)}:alert:${ruleId}`,
  };
}

export type RedisKeys = ReturnType<typeof redisKeys>;
