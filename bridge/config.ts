import { hostname } from 'node:os';
import { z } from 'zod';
import { baseConfigSchema, type Env, httpUrl, loadConfig, mqttFields, sinkFields } from '../shared/config.js';
import { eventAuthFields } from '../shared/event-auth.js';

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/**
 * The bridge's environment. Every field has a default except where the deployment must say where things
 * are (MQTT_URL, K_SINK from the SinkBinding, DEAD_LETTER_SINK).
 */
export const bridgeConfigSchema = baseConfigSchema.extend({
  ...mqttFields,
  ...sinkFields,
  ...eventAuthFields,
  /** Where permanently refused messages go, as `io.kiot.bridge.rejected` CloudEvents. */
  DEAD_LETTER_SINK: httpUrl,
  /**
   * The stable base of every MQTT client id of this replica (ARCHITECTURE "Bridge sessions": never random,
   * a StatefulSet pod name is stable). Default `kiot-bridge-${HOSTNAME}`.
   */
  BRIDGE_CLIENT_ID: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,60}$/)
    .optional(),
  /**
   * MQTT sessions per replica in the shared group. mqtt.js handles one PUBLISH of a connection at a time
   * and we hold its PUBACK until the sink answers, so this is the replica's delivery concurrency. 8 is what
   * `npm run bench:bridge` measured as enough to reach the broker's rate on loopback (see README of the bench).
   */
  BRIDGE_SESSIONS: int(1, 64).default(8),
  BRIDGE_SHARE_GROUP: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,64}$/)
    .default('kiot'),
  /** The CloudEvents `source` of device events: the broker. Default: MQTT_URL without credentials. */
  BRIDGE_SOURCE: z.string().min(1).optional(),
  /** MQTT 5 by default; 3.1.1 devices still work because the broker translates between versions. */
  MQTT_PROTOCOL_VERSION: z
    .enum(['4', '5'])
    .default('5')
    .transform((v) => (v === '4' ? 4 : 5) as 4 | 5),
  /** MQTT5 Session Expiry Interval (§3.1.2.11.2) of the subscriber sessions: a long outage keeps its queue. */
  BRIDGE_SESSION_EXPIRY_S: int(60, 4_294_967_295).default(7 * 24 * 3600),
  MAX_PAYLOAD_BYTES: int(1, 256 * 1024 * 1024).default(256 * 1024),
  /**
   * MQTT5 Receive Maximum (§3.1.2.11.3) per session: the QoS 1 messages the broker may have in flight to
   * one session. It bounds what waits in memory (sessions × this × MAX_PAYLOAD_BYTES); the rest stays
   * queued in the broker. For MQTT 3.1.1 the broker's `max_inflight_messages` plays this part.
   */
  MAX_IN_FLIGHT: int(1, 65_535).default(32),
  /**
   * The payload bytes of unacknowledged messages the replica holds at most, over all its sessions: at this
   * bound the sessions stop reading from the broker (TCP backpressure) until messages settle, so what waits in
   * memory is bounded by this (plus one message per session) whatever the window and the payload sizes.
   * 64 MiB is today's worst case of the default window (8 × 32 × MAX_PAYLOAD_BYTES 256 KiB).
   */
  MAX_IN_FLIGHT_BYTES: int(1_024, 4 * 1_073_741_824).default(64 * 1_048_576),
  /**
   * Telemetry batching (docs/telemetry-batch.md): plain telemetry messages travel together in one
   * `io.kiot.telemetry.batch` event, closed at this many messages, at this many bytes of JSON (well under
   * the 1 MB a Kafka broker takes by default), or this long after its first message, whichever comes first.
   * BATCH_MAX_COUNT=1 sends each message as its own `io.kiot.telemetry.received`, as before batching.
   * The defaults are the benchmark's choice (docs/performance.md). A count closes a batch only if that many
   * messages can be unacknowledged at once: 250 fits the default window (BRIDGE_SESSIONS × MAX_IN_FLIGHT =
   * 256); a larger count with this window closes every busy batch by linger, with the window full meanwhile.
   */
  BATCH_MAX_COUNT: int(1, 10_000).default(250),
  BATCH_MAX_BYTES: int(1_024, 4 * 1_048_576).default(512 * 1024),
  BATCH_LINGER_MS: int(0, 60_000).default(10),
  /** Capped exponential backoff with full jitter for transient sink failures, retried indefinitely. */
  RETRY_BASE_MS: int(1, 60_000).default(50),
  RETRY_MAX_MS: int(1, 600_000).default(10_000),
  SINK_TIMEOUT_MS: int(100, 600_000).default(10_000),
  SINK_CONNECTIONS: int(1, 1024).default(64),
  MQTT_RECONNECT_MS: int(50, 600_000).default(1_000),
  /** How long a graceful stop waits for the in-flight messages before it ends the sessions anyway. */
  DRAIN_TIMEOUT_MS: int(0, 600_000).default(20_000),
  HOSTNAME: z.string().optional(),
});

export type BridgeEnv = z.infer<typeof bridgeConfigSchema>;

export interface BridgeConfig extends Omit<BridgeEnv, 'BRIDGE_CLIENT_ID' | 'BRIDGE_SOURCE'> {
  BRIDGE_CLIENT_ID: string;
  BRIDGE_SOURCE: string;
}

/** The broker's URL without user info, path or query: a CloudEvents `source` that leaks no secret. */
export function brokerSource(mqttUrl: string): string {
  const url = new URL(mqttUrl);
  return `${url.protocol}//${url.host}`;
}

/** Validates the environment once at start-up and fills in the derived defaults. */
export function loadBridgeConfig(env: Env = process.env): BridgeConfig {
  const parsed = loadConfig(bridgeConfigSchema, env);
  return {
    ...parsed,
    BRIDGE_CLIENT_ID: parsed.BRIDGE_CLIENT_ID ?? `kiot-bridge-${parsed.HOSTNAME ?? hostname()}`,
    BRIDGE_SOURCE: parsed.BRIDGE_SOURCE ?? brokerSource(parsed.MQTT_URL),
  };
}

/** The client id of subscriber session `index`: `${base}-s${index}`, the same on every start. */
export const sessionClientId = (base: string, index: number) => `${base}-s${index}`;
/** The client id of the publisher connection. */
export const publisherClientId = (base: string) => `${base}-pub`;
