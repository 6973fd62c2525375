/**
 * Every Redis key of this capability. The device id is a hash tag (`{…}`, Redis Cluster spec "Hash
 * tags"), so the keys one Lua script touches for a device always live in one slot. The device's
 * shadow hash, `{prefix}:{id}:shadow`, is shared/shadow.ts's (`shadowKey`). The fleet-wide keys share the
 * tag `{fleet}`: one slot, so one script keeps them consistent.
 */
export function redisKeys(prefix: string) {
  const device = (deviceId: string) => `${prefix}:{${deviceId}}`;
  const fleet = `${prefix}:{fleet}`;
  return {
    /** A state report's dedup mark (telemetry has none: its samples' unique `_id` in MongoDB is its dedup). */
    dedup: (deviceId: string, eventId: string) => `${device(deviceId)}:event:${eventId}`,
    /**
     * Presence (presence-repository.ts); its `watched` field says until when a live hub listens (live-hub.ts), and
     * its `tokens`, `tokensAt`, `noticedAt` fields are the device's rate bucket (admission-scripts.ts).
     */
    presence: (deviceId: string) => `${device(deviceId)}:presence`,
    alert: (deviceId: string, ruleId: string) => `${device(deviceId)}:alert:${ruleId}`,
    /** The pub/sub channel of a device's stored samples (sharded pub/sub on a Cluster: the device's slot). */
    live: (deviceId: string) => `${device(deviceId)}:live`,
    /** The devices online now (sorted set, score = since, ms): a fleet overview counts and lists them. */
    online: `${fleet}:online`,
    /** Per device, the event time of its last status change the index applied (orders late updates). */
    presenceSince: `${fleet}:presence-since`,
    /**
     * Changed (a random value) whenever a hub starts watching devices (live-hub.ts): an ingest that read the
     * `watched` marks before its insert reads them again after it if this changed meanwhile (live-feed.ts).
     */
    watchEpoch: `${fleet}:watch-epoch`,
    /** Messages stored in one second (epoch seconds), kept two minutes: the fleet's messages per second. */
    rate: (second: number) => `${fleet}:rate:${second}`,
  };
}

export type RedisKeys = ReturnType<typeof redisKeys>;
