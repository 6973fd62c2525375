import { setTimeout as delay } from 'node:timers/promises';
import type { CloudEvent } from '../shared/cloudevents.js';
import { type BackoffPolicy, backoffDelayMs } from '../shared/event-transport.js';
import type { Logger } from '../shared/logger.js';
import { type BatchSettings, createTelemetryBatches } from './batches.js';
import type { Delivery, StillWanted } from './delivery.js';
import { type InboundMessage, mapInboundMessage, type Rejection } from './device-events.js';
import type { BridgeMetrics } from './metrics.js';
import type { Publisher } from './publisher.js';
import { deadLetterEventOf, replyPayloadOf } from './rejections.js';
import { telemetryItemOf } from './telemetry-items.js';
import { replyTopicFor } from './topics.js';

export interface MessageHandlerOptions {
  source: string;
  maxPayloadBytes: number;
  delivery: Delivery;
  publisher: Publisher;
  metrics: BridgeMetrics;
  logger: Logger;
  backoff: BackoffPolicy;
  signal: AbortSignal;
  /** Telemetry batching; a maximum count of 1 sends every message as its own event. */
  batch: BatchSettings;
}

/**
 * How a device message is being handled. `settled` resolves `true` when it may be acknowledged (PUBACK):
 * after the sink accepted its event (alone or in a batch), or after a refused message was dead-lettered and
 * its device told; `false` when it is no longer wanted (its connection is gone, the bridge stops): then
 * there is no PUBACK and the broker delivers it again (at least once, ARCHITECTURE "Delivery guarantees").
 * `inOrder` asks the session to read its next message only once this one has settled: state reports,
 * presence and acknowledgements keep their order; telemetry in a batch must not, or no batch would fill.
 */
export interface Handling {
  settled: Promise<boolean>;
  inOrder: boolean;
}

export type MessageHandler = (message: InboundMessage, stillWanted: StillWanted) => Handling;

export function createMessageHandler(options: MessageHandlerOptions): MessageHandler {
  const { delivery, metrics, logger } = options;
  // Labelled children looked up once per label value, not hashed from a label object on every message.
  const receivedBy = new Map<string, { inc(): void }>();
  const forwardedBy = new Map<string, { inc(): void }>();
  const child = (
    cache: Map<string, { inc(): void }>,
    counter: { labels(value: string): { inc(): void } },
    value: string,
  ) => {
    let found = cache.get(value);
    if (!found) {
      found = counter.labels(value);
      cache.set(value, found);
    }
    return found;
  };

  /** Tells the sender why; retried while the publisher is away, given up only if the broker refuses. */
  async function tellSender(rejection: Rejection, stillWanted: StillWanted): Promise<boolean> {
    if (!rejection.replyTopic) return true;
    const payload = replyPayloadOf(rejection);
    for (let n = 1; ; n += 1) {
      try {
        await options.publisher.publish(rejection.replyTopic, payload, { qos: 1, retain: false });
        return true;
      } catch (error) {
        const status = (error as { status?: number }).status;
        if (status !== 503) {
          // The broker refused (an ACL, a quota): the dead-letter record already holds the message.
          logger.warn({ err: error, topic: rejection.replyTopic }, 'could not tell the device');
          return true;
        }
      }
      if (!stillWanted() || options.signal.aborted) return false;
      await delay(backoffDelayMs(options.backoff, Math.min(n, 30)), undefined, { signal: options.signal }).catch(
        () => undefined,
      );
    }
  }

  async function refuse(message: InboundMessage, rejection: Rejection, stillWanted: StillWanted): Promise<boolean> {
    const record = deadLetterEventOf(message, rejection, options);
    // The durable record first: if the bridge dies after it, the redelivered message writes the same record.
    if ((await delivery.deadLetter(record, stillWanted)) === 'abandoned') return false;
    metrics.deadLettered.inc({ reason: rejection.code });
    logger.warn(
      {
        ce: { id: record.id, type: record.type, subject: rejection.subject },
        topic: message.topic,
        reason: { code: rejection.code, message: rejection.message },
        ...(rejection.sink ? { sinkStatus: rejection.sink.status } : {}),
        outcome: 'dead_lettered',
      },
      'message refused',
    );
    return tellSender(rejection, stillWanted);
  }

  /**
   * Mapping is pure, so an exception in it would recur on every redelivery and stall the session for
   * good: such a message is dead-lettered as the bridge's fault instead.
   */
  function mapSafely(message: InboundMessage): ReturnType<typeof mapInboundMessage> {
    try {
      return mapInboundMessage(message, options);
    } catch (error) {
      logger.error({ err: error, topic: message.topic }, 'mapping failed');
      return {
        ok: false,
        rejection: {
          code: 'bridge_error',
          message: 'the bridge could not read this message',
          topic: message.topic,
          replyTopic: replyTopicFor(message.topic),
        },
      };
    }
  }

  /** One event to the sink: delivered, or refused (dead-lettered, the device told), or abandoned. */
  async function forwardAlone(message: InboundMessage, event: CloudEvent<unknown>, stillWanted: StillWanted) {
    const outcome = await delivery.forward(event, stillWanted);
    if (outcome.kind === 'abandoned') return false;
    if (outcome.kind === 'refused') {
      return refuse(
        message,
        {
          code: 'refused_by_sink',
          message: `the event sink refused ${event.type} with ${outcome.status}`,
          topic: message.topic,
          replyTopic: replyTopicFor(message.topic),
          subject: event.subject,
          eventId: event.id,
          sink: { status: outcome.status, body: outcome.body },
        },
        stillWanted,
      );
    }
    child(forwardedBy, metrics.forwarded, event.type).inc();
    metrics.forwardLatency.observe((Date.now() - message.receivedAt.getTime()) / 1000);
    if (logger.isLevelEnabled('debug'))
      logger.debug({ ce: { id: event.id, type: event.type, subject: event.subject } }, 'forwarded');
    return true;
  }

  async function handleAlone(message: InboundMessage, stillWanted: StillWanted): Promise<boolean> {
    const mapped = mapSafely(message);
    if (!mapped.ok) return refuse(message, mapped.rejection, stillWanted);
    return forwardAlone(message, mapped.event, stillWanted);
  }

  const batches = createTelemetryBatches({ ...options, forwardAlone });

  return (message, stillWanted) => {
    child(
      receivedBy,
      metrics.received,
      message.topic === 'provisioning' || message.topic.startsWith('provisioning/')
        ? 'provisioning'
        : kindLabel(message.topic),
    ).inc();
    metrics.inFlight.inc();
    const item = batches.enabled ? itemSafely(message) : undefined;
    const settled =
      item && batches.fits(item) ? batches.add(message, item, stillWanted) : handleAlone(message, stillWanted);
    return { settled: settled.finally(() => metrics.inFlight.dec()), inOrder: item === undefined };
  };

  /** A plain telemetry message's batch item; a message the mapping cannot read goes the single way. */
  function itemSafely(message: InboundMessage) {
    try {
      return telemetryItemOf(message, options);
    } catch {
      return undefined;
    }
  }
}

const KIND_BY_SUFFIX: [RegExp, string][] = [
  [/\/telemetry$/, 'telemetry'],
  [/\/state\/reported$/, 'state'],
  [/\/status$/, 'status'],
  [/\/ack$/, 'ack'],
  [/\/jobs\//, 'job'],
];

/** A bounded label for the received counter (never the raw topic: device ids would explode the series). */
function kindLabel(topic: string): string {
  for (const [pattern, kind] of KIND_BY_SUFFIX) if (pattern.test(topic)) return kind;
  return 'other';
}
