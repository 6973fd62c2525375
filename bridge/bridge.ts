import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import mqtt from 'mqtt';
import { DependencyUnavailableError } from '../shared/errors.js';
import { bearerHeader, createTokenSource, eventPlaneOf } from '../shared/event-auth.js';
import { createEventDispatcher, type EventDispatcher } from '../shared/event-transport.js';
import { createFunctionApp } from '../shared/function-app.js';
import { createLogger, type Logger } from '../shared/logger.js';
import { createPlainServer } from '../shared/plain-http-server.js';
import { type BridgeConfig, publisherClientId } from './config.js';
import { createDelivery } from './delivery.js';
import { createMessageHandler } from './message-handler.js';
import { type BridgeMetrics, createBridgeMetrics } from './metrics.js';
import { mqttPublishRoute } from './publish-route.js';
import { createPublisher, type MqttConnect, type Publisher } from './publisher.js';
import { createSessionPool, type SessionPool } from './sessions.js';

export interface BridgeDeps {
  logger?: Logger;
  metrics?: BridgeMetrics;
  dispatcher?: EventDispatcher;
  /** How MQTT connections are made; tests wrap it to watch the packets (e.g. when a PUBACK leaves). */
  connect?: MqttConnect;
}

export interface BridgeHandle {
  /** The bridge's HTTP address (`/`, `/healthz`, `/metrics`). */
  url: string;
  port: number;
  sessions: SessionPool;
  publisher: Publisher;
  metrics: BridgeMetrics;
  /** Resolves once every subscriber session is connected and subscribed. */
  ready(): Promise<void>;
  /** Graceful stop (ARCHITECTURE "Bridge sessions"): leave the group, finish in-flight work, end the sessions. */
  drain(): Promise<void>;
  /** Stops everything now; unacknowledged messages come again to the same session ids. */
  close(): Promise<void>;
}

/**
 * Starts the MQTT⇄CloudEvents bridge: the subscriber sessions (MQTT → K_SINK), the publisher and the HTTP
 * server (io.kiot.mqtt.publish → MQTT, /healthz, /metrics). Resolves once the HTTP server listens; the MQTT
 * connections come up on their own (see `ready()`), and `/healthz` answers 503 until they have.
 */
/**
 * PUBACKs and publishes are small writes: with Nagle's algorithm each one that follows another within a
 * round trip waits for the peer's delayed ACK (~40 ms). Every (re)connection gets TCP_NODELAY.
 */
const connectWithoutNagle: MqttConnect = (url, options) => {
  // mqtt.js traces every packet through the `debug` package, which costs even when nobody listens (a few
  // percent of the bridge's CPU per message, measured with --cpu-prof): a no-op log unless DEBUG asks for it.
  // writeCache false: mqtt-packet otherwise builds 65,536 two-byte Buffers on the first packet written (for packet
  // ids and lengths), 8 % of the bridge's start in its profile and ~9 MB of live objects the collector then marks
  // (docs/performance.md, "Cold start"); uncached, each id is a 2-byte slice of Node's buffer pool.
  const client = mqtt.connect(url, {
    ...(process.env.DEBUG ? {} : { log: () => {} }),
    writeCache: false,
    ...options,
  });
  client.on('connect', () => (client.stream as { setNoDelay?: (noDelay: boolean) => void }).setNoDelay?.(true));
  return client;
};

export async function startBridge(config: BridgeConfig, deps: BridgeDeps = {}): Promise<BridgeHandle> {
  const logger = deps.logger ?? createLogger('bridge', config.LOG_LEVEL);
  const plane = eventPlaneOf(config);
  const metrics = deps.metrics ?? createBridgeMetrics();
  const dispatcher = deps.dispatcher ?? createEventDispatcher(config.SINK_CONNECTIONS);
  const connect: MqttConnect = deps.connect ?? connectWithoutNagle;
  const stop = new AbortController();
  const backoff = {
    policy: 'exponential' as const,
    baseMs: config.RETRY_BASE_MS,
    maxMs: config.RETRY_MAX_MS,
    jitter: true,
  };
  const credentials = {
    ...(config.MQTT_USERNAME ? { username: config.MQTT_USERNAME } : {}),
    ...(config.MQTT_PASSWORD ? { password: config.MQTT_PASSWORD } : {}),
  };

  // 1. The publisher: io.kiot.mqtt.publish and the devices' error messages go out through it.
  const publisher = createPublisher({
    url: config.MQTT_URL,
    clientId: publisherClientId(config.BRIDGE_CLIENT_ID),
    protocolVersion: config.MQTT_PROTOCOL_VERSION,
    reconnectPeriod: config.MQTT_RECONNECT_MS,
    ackTimeoutMs: config.SINK_TIMEOUT_MS,
    connect,
    logger,
    ...credentials,
  });

  // 2. MQTT → CloudEvents: map, deliver with retries, dead-letter what is refused.
  const delivery = createDelivery({
    sink: config.K_SINK,
    deadLetterSink: config.DEAD_LETTER_SINK,
    dispatcher,
    backoff,
    timeoutMs: config.SINK_TIMEOUT_MS,
    logger,
    metrics,
    signal: stop.signal,
    credentials: {
      sink: plane.producerHeaders,
      deadLetterSink: bearerHeader(createTokenSource(config.DEAD_LETTER_TOKEN_FILE)),
    },
  });
  const handler = createMessageHandler({
    source: config.BRIDGE_SOURCE,
    maxPayloadBytes: config.MAX_PAYLOAD_BYTES,
    delivery,
    publisher,
    metrics,
    logger,
    backoff,
    signal: stop.signal,
    batch: { maxCount: config.BATCH_MAX_COUNT, maxBytes: config.BATCH_MAX_BYTES, lingerMs: config.BATCH_LINGER_MS },
  });

  // 3. The subscriber sessions of the shared group.
  const sessions = createSessionPool({
    url: config.MQTT_URL,
    baseClientId: config.BRIDGE_CLIENT_ID,
    sessions: config.BRIDGE_SESSIONS,
    group: config.BRIDGE_SHARE_GROUP,
    protocolVersion: config.MQTT_PROTOCOL_VERSION,
    sessionExpirySeconds: config.BRIDGE_SESSION_EXPIRY_S,
    receiveMaximum: config.MAX_IN_FLIGHT,
    maxHeldBytes: config.MAX_IN_FLIGHT_BYTES,
    reconnectPeriod: config.MQTT_RECONNECT_MS,
    connect,
    handler,
    logger,
    metrics,
    ...credentials,
  });

  // 4. The HTTP side, through the shared function entry: CE parsing, error mapping, /healthz, /metrics.
  let draining = false;
  const maxBodyBytes = config.MAX_PAYLOAD_BYTES * 2 + 64 * 1024;
  const app = createFunctionApp({
    service: 'bridge',
    logger,
    registry: metrics.registry,
    maxBodyBytes,
    events: [mqttPublishRoute({ publisher, maxPayloadBytes: config.MAX_PAYLOAD_BYTES, metrics })],
    // The publish endpoint takes events only from the Broker's Trigger: a forged one would reach a device.
    ...(plane.authenticateEvent ? { authenticateEvent: plane.authenticateEvent } : {}),
    health: {
      mqttSessions: async () => {
        const status = sessions.status();
        if (draining) throw new DependencyUnavailableError('mqtt sessions (draining)');
        if (status.subscribed < status.total) {
          throw new Error(`${status.subscribed} of ${status.total} sessions connected and subscribed`);
        }
      },
      mqttPublisher: async () => {
        if (!publisher.connected()) throw new Error('publisher disconnected');
      },
    },
  });
  const server: Server = createPlainServer(app, maxBodyBytes);
  await new Promise<void>((resolve) => server.listen(config.PORT, resolve));
  const port = (server.address() as AddressInfo).port;
  logger.info(
    { port, clientId: config.BRIDGE_CLIENT_ID, sessions: config.BRIDGE_SESSIONS, group: config.BRIDGE_SHARE_GROUP },
    'bridge listening',
  );

  let closed = false;
  const closeAll = async () => {
    if (closed) return;
    closed = true;
    stop.abort();
    await sessions.close();
    await publisher.close();
    await new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
    if (!deps.dispatcher) await dispatcher.close().catch(() => undefined);
    logger.flush();
  };

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    sessions,
    publisher,
    metrics,
    ready: () => sessions.ready(),
    async drain() {
      if (closed) return;
      draining = true;
      logger.info({ timeoutMs: config.DRAIN_TIMEOUT_MS }, 'draining');
      await sessions.drain(config.DRAIN_TIMEOUT_MS);
      await closeAll();
    },
    close: closeAll,
  };
}
