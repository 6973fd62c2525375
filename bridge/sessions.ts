import { setTimeout as delay } from 'node:timers/promises';
import type { IPublishPacket, MqttClient } from 'mqtt';
import type { Logger } from '../shared/logger.js';
import { sessionClientId } from './config.js';
import type { InboundMessage } from './device-events.js';
import type { MessageHandler } from './message-handler.js';
import type { BridgeMetrics } from './metrics.js';
import type { MqttConnect } from './publisher.js';
import { subscriptionFilters } from './topics.js';

export interface SessionPoolOptions {
  url: string;
  baseClientId: string;
  sessions: number;
  group: string;
  protocolVersion: 4 | 5;
  sessionExpirySeconds: number;
  receiveMaximum: number;
  /**
   * The payload bytes of unsettled messages the pool holds at most, whatever the sessions' windows allow: at
   * this bound every session stops reading until messages settle. Each session may still take the one message
   * its last read let in, so the payloads held stay under this plus one message per session.
   */
  maxHeldBytes: number;
  reconnectPeriod: number;
  username?: string;
  password?: string;
  connect: MqttConnect;
  handler: MessageHandler;
  logger: Logger;
  metrics: BridgeMetrics;
}

export interface SessionPool {
  readonly clients: readonly MqttClient[];
  /** Resolves once every session has connected and subscribed once. */
  ready(): Promise<void>;
  /** Sessions connected and subscribed, of all. */
  status(): { total: number; connected: number; subscribed: number };
  /** Unsubscribes from the group, finishes what is in flight (at most `timeoutMs`), then ends the sessions. */
  drain(timeoutMs: number): Promise<void>;
  /** Ends the sessions now; what is in flight stays unacknowledged and comes again. */
  close(): Promise<void>;
}

interface Session {
  id: string;
  client: MqttClient;
  /** Counts CONNACKs: a delivery from an older connection must not PUBACK on a newer one. */
  generation: number;
  subscribed: boolean;
  /** The QoS 1 messages of the current connection not yet acknowledged, in the order they came. */
  unacknowledged: Slot[];
  /** Messages handed to the handler and not yet settled (any QoS, any connection). */
  unsettled: number;
  /** mqtt.js's go-ahead for the next packet, held while `unsettled` or the pool's held bytes are at the limit. */
  heldRead: (() => void) | undefined;
  lastActivity: number;
}

/** A received message waiting for its PUBACK: `waiting` until it settles, then `ack` or `skip`. */
interface Slot {
  messageId: number | undefined;
  qos: number;
  state: 'waiting' | 'ack' | 'skip';
}

/** The quiet time after which a draining session is taken to have nothing queued for it any more. */
const DRAIN_QUIET_MS = 300;

/**
 * mqtt.js sends a PUBACK when `handleMessage` calls back without an error and reads the connection's next
 * packet only after that callback (client.js `work()`, handlers/publish.js): calling back with this error
 * reads on without a PUBACK; the session sends it itself once the message has settled (`sendPuback`).
 */
const READ_ON_WITHOUT_PUBACK = new Error('the bridge acknowledges this message itself once it has settled');

/** mqtt.js 5's own packet writer (what its automatic PUBACK goes through); checked to exist at start. */
type PacketWriter = { _sendPacket(packet: { cmd: 'puback'; messageId: number }, callback?: () => void): void };

function sendPuback(client: MqttClient, messageId: number): void {
  (client as unknown as PacketWriter)._sendPacket({ cmd: 'puback', messageId });
}

function inboundOf(packet: IPublishPacket, sessionId: string): InboundMessage {
  const properties = packet.properties;
  return {
    topic: packet.topic,
    payload: Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload),
    qos: packet.qos,
    ...(packet.qos > 0 && packet.messageId !== undefined ? { packetId: packet.messageId } : {}),
    sessionId,
    receivedAt: new Date(),
    ...(properties && (properties.contentType || properties.userProperties)
      ? { properties: { contentType: properties.contentType, userProperties: properties.userProperties } }
      : {}),
  };
}

/**
 * The fixed set of subscriber sessions of this replica in the shared group (ARCHITECTURE "Bridge
 * sessions"): stable ids `${base}-s${i}`, persistent (clean start 0 and a long session expiry, MQTT5
 * §3.1.2.4 / §3.1.2.11.2; clean session 0 in 3.1.1 §3.1.2.4), QoS 1.
 *
 * mqtt.js hands a connection's PUBLISH packets to `handleMessage` one at a time and reads the next one only
 * when its callback is called. A message whose handling asks for order (state, presence, acknowledgements)
 * holds that callback until it has settled, as before batching; a telemetry message in a batch releases it
 * at once, so that the next messages can join the batch: up to the session's Receive Maximum (MQTT5
 * §3.1.2.11.3) are in flight on it. The session holds that bound itself: Mosquitto 2.0.11 was measured to send
 * a persistent session more than it asked for (25 unacknowledged with 5 asked; thousands in a burst), so at the
 * limit the session stops reading its connection until a message settles (TCP backpressure). The pool bounds
 * the bytes too: while the payloads of its unsettled messages reach `maxHeldBytes`, every session stops reading
 * (what may wait in memory no longer grows with the windows: sessions × Receive Maximum × the largest payload).
 * Either way the PUBACK leaves only once a message has settled (its event
 * or batch accepted: at least once), and PUBACKs leave in the order the messages came, as MQTT 3.1.1 §4.6
 * [MQTT-4.6.0-2] and MQTT5 §4.6 require: a settled message waits for the ones before it.
 */
export function createSessionPool(options: SessionPoolOptions): SessionPool {
  const { logger, metrics } = options;
  const filters = subscriptionFilters(options.group);
  let draining = false;
  let stopped = false;
  const sessions: Session[] = [];
  const readyWaiters: (() => void)[] = [];
  /** The payload bytes of the messages handed to the handler and not yet settled, over all sessions. */
  let heldBytes = 0;
  const heldOn = { messages: metrics.readsHeld.labels('messages'), bytes: metrics.readsHeld.labels('bytes') };
  const mayRead = (session: Session) => session.unsettled < options.receiveMaximum && heldBytes < options.maxHeldBytes;
  /** Gives the held sessions their go-ahead again, as far as the bounds allow. */
  const resumeReading = () => {
    for (const session of sessions) {
      const held = session.heldRead;
      if (held && mayRead(session)) {
        session.heldRead = undefined;
        held();
      }
    }
  };

  const updateGauge = () => metrics.sessionsConnected.set(sessions.filter((s) => s.client.connected).length);
  const allSubscribed = () => sessions.every((s) => s.subscribed);
  const checkReady = () => {
    if (allSubscribed()) for (const resolve of readyWaiters.splice(0)) resolve();
  };

  function subscribe(session: Session) {
    const generation = session.generation;
    session.client.subscribe(filters, { qos: 1 }, (error, granted) => {
      if (session.generation !== generation) return;
      const refused = (granted ?? []).filter((grant) => grant.qos >= 0x80);
      if (error || refused.length > 0) {
        // MQTT5 §3.9.3: 0x9E shared subscriptions not supported, 0x87 not authorized. Health stays red.
        logger.error(
          { err: error, clientId: session.id, refused: refused.map((g) => g.topic) },
          'subscription refused',
        );
        return;
      }
      session.subscribed = true;
      checkReady();
    });
  }

  /** Sends the PUBACKs that are due: those of settled messages with nothing unsettled before them. */
  function acknowledgeInOrder(session: Session, slots: Slot[], current: () => boolean) {
    while (slots.length > 0 && slots[0]!.state !== 'waiting') {
      const slot = slots.shift()!;
      // Never PUBACK on a newer connection: the broker resent the message there under the same packet id
      // and may already have reused the id once that copy was acknowledged (MQTT5 §2.2.1).
      if (slot.state === 'ack' && slot.qos > 0 && slot.messageId !== undefined && current() && !stopped)
        sendPuback(session.client, slot.messageId);
    }
  }

  function onMessage(session: Session, packet: IPublishPacket, readOn: () => void) {
    const generation = session.generation;
    const slots = session.unacknowledged;
    const current = () => session.generation === generation && session.client.connected;
    const stillWanted = () => !stopped && current();
    const message = inboundOf(packet, session.id);
    const slot: Slot = { messageId: packet.messageId, qos: packet.qos, state: 'waiting' };
    if (packet.qos > 0) slots.push(slot);
    session.lastActivity = Date.now();
    session.unsettled += 1;
    const bytes = message.payload.length;
    heldBytes += bytes;
    metrics.inFlightBytes.set(heldBytes);
    let reading = false;
    const readNext = () => {
      if (reading) return;
      reading = true;
      // At a bound the session stops reading until a message settles: TCP backpressure, whatever the broker
      // makes of the Receive Maximum, and whatever size the next messages are.
      if (mayRead(session)) readOn();
      else {
        session.heldRead = readOn;
        heldOn[session.unsettled >= options.receiveMaximum ? 'messages' : 'bytes'].inc();
      }
    };
    let settled = false;
    const settle = (acknowledge: boolean) => {
      slot.state = acknowledge ? 'ack' : 'skip';
      session.lastActivity = Date.now();
      acknowledgeInOrder(session, slots, current);
      if (!settled) {
        settled = true;
        session.unsettled -= 1;
        heldBytes -= bytes;
        metrics.inFlightBytes.set(heldBytes);
        resumeReading();
      }
      readNext();
    };
    const run = (attempt: number): void => {
      const handling = options.handler(message, stillWanted);
      if (!handling.inOrder) readNext();
      handling.settled.then(settle, (error: unknown) => {
        // A bug, not a fault of the message or the sink: keep the message and try again.
        logger.error({ err: error, clientId: session.id, topic: message.topic, attempt }, 'message handler failed');
        if (!stillWanted()) return settle(false);
        setTimeout(() => run(attempt + 1), Math.min(1_000 * attempt, 30_000)).unref();
      });
    };
    run(1);
  }

  for (let index = 0; index < options.sessions; index += 1) {
    const id = sessionClientId(options.baseClientId, index);
    const client = options.connect(options.url, {
      clientId: id,
      clean: false,
      protocolVersion: options.protocolVersion,
      ...(options.protocolVersion === 5
        ? {
            properties: { sessionExpiryInterval: options.sessionExpirySeconds, receiveMaximum: options.receiveMaximum },
          }
        : {}),
      reconnectPeriod: options.reconnectPeriod,
      connectTimeout: 10_000,
      keepalive: 30,
      // We subscribe on every CONNACK ourselves; mqtt.js would do it a second time.
      resubscribe: false,
      ...(options.username ? { username: options.username } : {}),
      ...(options.password ? { password: options.password } : {}),
    });
    if (typeof (client as unknown as Partial<PacketWriter>)._sendPacket !== 'function')
      throw new Error('this mqtt.js has no _sendPacket: the bridge cannot acknowledge messages itself');
    const session: Session = {
      id,
      client,
      generation: 0,
      subscribed: false,
      unacknowledged: [],
      unsettled: 0,
      heldRead: undefined,
      lastActivity: Date.now(),
    };
    sessions.push(session);
    client.handleMessage = (packet, done) => onMessage(session, packet, () => done(READ_ON_WITHOUT_PUBACK));
    client.on('connect', (connack) => {
      session.generation += 1;
      // What the old connection left unacknowledged, the broker sends again on this one.
      session.unacknowledged = [];
      session.heldRead = undefined;
      updateGauge();
      logger.info({ clientId: id, sessionPresent: connack.sessionPresent }, 'mqtt session connected');
      if (!draining) subscribe(session);
    });
    client.on('close', () => {
      updateGauge();
      if (!stopped) logger.warn({ clientId: id }, 'mqtt session disconnected');
    });
    client.on('error', (error) => logger.warn({ err: error, clientId: id }, 'mqtt session error'));
  }

  return {
    clients: sessions.map((s) => s.client),
    ready: () => new Promise<void>((resolve) => (allSubscribed() ? resolve() : readyWaiters.push(resolve))),
    status: () => ({
      total: sessions.length,
      connected: sessions.filter((s) => s.client.connected).length,
      subscribed: sessions.filter((s) => s.client.connected && s.subscribed).length,
    }),
    async drain(timeoutMs) {
      draining = true;
      const deadline = Date.now() + timeoutMs;
      // 1. Leave the group: the broker assigns nothing new to these sessions (MQTT5 §4.8.2).
      await Promise.all(
        sessions.map(async (session) => {
          if (!session.client.connected) return;
          // A message stuck in retries holds the UNSUBACK behind it (mqtt.js reads one packet at a time).
          const wait = Math.min(5_000, Math.max(deadline - Date.now(), 0));
          await Promise.race([
            session.client.unsubscribeAsync(filters).catch(() => undefined),
            delay(wait, undefined, { ref: false }),
          ]);
          session.subscribed = false;
        }),
      );
      // 2. Finish what is in flight, and what the broker had already queued for us: until every session has
      //    been idle for a moment.
      const idle = () =>
        sessions.every((s) => s.unacknowledged.length === 0 && Date.now() - s.lastActivity >= DRAIN_QUIET_MS);
      while (!idle() && Date.now() < deadline) await delay(50);
      if (!idle())
        logger.warn({ timeoutMs }, 'drain timed out; unacknowledged messages stay queued for these session ids');
      // 3. End the sessions with a normal DISCONNECT; their (empty) state expires on its own.
      stopped = true;
      // A message still being retried (its sink is down) holds a graceful end forever: past the deadline the
      // session is closed without its PUBACK, and the broker keeps that message for this session id
      // (MQTT 5 §4.8.2) until the member comes back under it.
      const graceful = Promise.all(sessions.map((s) => s.client.endAsync(false).catch(() => undefined)));
      const left = Math.max(deadline - Date.now(), 1_000);
      if ((await Promise.race([graceful.then(() => true), delay(left, false, { ref: false })])) === false) {
        logger.warn('sessions did not end gracefully in time; closing them');
        await Promise.all(sessions.map((s) => s.client.endAsync(true).catch(() => undefined)));
      }
      updateGauge();
    },
    async close() {
      stopped = true;
      await Promise.all(sessions.map((s) => s.client.endAsync(true).catch(() => undefined)));
      updateGauge();
    },
  };
}
