import { setTimeout as delay } from 'node:timers/promises';
import { type CloudEventV1, toBinaryMessage } from '../shared/cloudevents.js';
import {
  type BackoffPolicy,
  backoffDelayMs,
  deliveryVerdict,
  type EventDispatcher,
  type PostResult,
  postMessage,
} from '../shared/event-transport.js';
import type { Logger } from '../shared/logger.js';
import type { BridgeMetrics } from './metrics.js';

/** Whether the MQTT message behind a delivery still waits for it (its connection lives, the bridge runs). */
export type StillWanted = () => boolean;

export type ForwardOutcome =
  | { kind: 'delivered' }
  | { kind: 'refused'; status: number; body: string }
  /** Given up because nobody waits any more: the message stays unacknowledged and comes again. */
  | { kind: 'abandoned' };

export interface DeliveryOptions {
  sink: string;
  deadLetterSink: string;
  dispatcher: EventDispatcher;
  backoff: BackoffPolicy;
  timeoutMs: number;
  logger: Logger;
  metrics: BridgeMetrics;
  /** Aborted when the bridge closes, so that nobody sleeps through a shutdown. */
  signal: AbortSignal;
  /** The workload identity tokens for the Broker and the dead-letter sink (shared/event-auth.ts). */
  credentials?: { sink: () => Record<string, string>; deadLetterSink: () => Record<string, string> };
}

export interface Delivery {
  /** POSTs to K_SINK until a 2xx or a permanent refusal; transient failures are retried indefinitely. */
  forward(event: CloudEventV1<unknown>, stillWanted: StillWanted): Promise<ForwardOutcome>;
  /** POSTs to DEAD_LETTER_SINK until a 2xx: the last resort is retried whatever it answers. */
  deadLetter(record: CloudEventV1<unknown>, stillWanted: StillWanted): Promise<'delivered' | 'abandoned'>;
}

export function createDelivery(options: DeliveryOptions): Delivery {
  const { logger, metrics } = options;

  /** One POST of a message serialised once per event (the SDK's binary mode), whatever the retries. */
  async function attempt(
    url: string,
    message: ReturnType<typeof toBinaryMessage>,
    credentials: (() => Record<string, string>) | undefined,
  ): Promise<PostResult | Error> {
    try {
      const headers = credentials ? { ...message.headers, ...credentials() } : message.headers;
      return await postMessage(
        url,
        { headers, body: message.body },
        { dispatcher: options.dispatcher, timeoutMs: options.timeoutMs },
      );
    } catch (error) {
      return error instanceof Error ? error : new Error(String(error));
    }
  }

  /** Sleeps before retry `n`; false when the wait was cut short because the message is no longer wanted. */
  async function backoff(n: number, stillWanted: StillWanted): Promise<boolean> {
    if (!stillWanted() || options.signal.aborted) return false;
    try {
      await delay(backoffDelayMs(options.backoff, Math.min(n, 30)), undefined, { signal: options.signal });
    } catch {
      return false;
    }
    return stillWanted();
  }

  return {
    async forward(event, stillWanted) {
      const message = toBinaryMessage(event);
      for (let n = 1; ; n += 1) {
        const result = await attempt(options.sink, message, options.credentials?.sink);
        // 401/403: the Broker refuses our own credential, not this message: keep it and retry, never dead-letter it.
        const verdict =
          result instanceof Error || result.status === 401 || result.status === 403
            ? 'retry'
            : deliveryVerdict(result.status);
        if (verdict === 'delivered') return { kind: 'delivered' };
        if (verdict === 'permanent' && !(result instanceof Error)) {
          return { kind: 'refused', status: result.status, body: result.body.toString('utf8') };
        }
        metrics.retried.inc({ target: 'sink' });
        // Only the first failure of an event and then every tenth: a sink outage must not flood the log.
        if (n === 1 || n % 10 === 0) {
          logger.warn(
            { ce: { id: event.id, type: event.type, subject: event.subject }, attempt: n, ...describe(result) },
            'sink unavailable, retrying',
          );
        }
        if (!(await backoff(n, stillWanted))) return { kind: 'abandoned' };
      }
    },

    async deadLetter(record, stillWanted) {
      const message = toBinaryMessage(record);
      for (let n = 1; ; n += 1) {
        const result = await attempt(options.deadLetterSink, message, options.credentials?.deadLetterSink);
        if (!(result instanceof Error) && deliveryVerdict(result.status) === 'delivered') return 'delivered';
        metrics.retried.inc({ target: 'dead_letter' });
        if (n === 1 || n % 10 === 0) {
          logger.error(
            { ce: { id: record.id, type: record.type }, attempt: n, ...describe(result) },
            'dead-letter sink unavailable, retrying',
          );
        }
        if (!(await backoff(n, stillWanted))) return 'abandoned';
      }
    },
  };
}

function describe(result: PostResult | Error): Record<string, unknown> {
  return result instanceof Error ? { error: result.message } : { status: result.status };
}
