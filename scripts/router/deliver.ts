import { setTimeout as sleep } from 'node:timers/promises';
import type { LimitFunction } from 'p-limit';
import type { CloudEvent } from '../../shared/cloudevents.js';
import { deliveryVerdict, type EventDispatcher, type PostResult, replyEventOf } from '../../shared/event-transport.js';
import type { Logger } from '../../shared/logger.js';
import type { DeadLetterFile, DeadLetterRecord } from './dead-letter-file.js';
import { type DeliveryPolicy, retryDelayMs } from './delivery-policy.js';
import type { TriggerRoute } from './load-manifests.js';
import type { RouterMetrics } from './metrics.js';
import type { ServiceReadiness } from './service-readiness.js';

export interface DeliverDeps {
  /**
   * At most ROUTER_CONCURRENCY sends in flight, the rest wait in arrival order (p-limit). Only the HTTP
   * request holds a slot, never a backoff wait, so a slow retry schedule cannot starve other Triggers.
   */
  limiter: LimitFunction;
  dispatcher: EventDispatcher;
  deadLetters: DeadLetterFile;
  metrics: RouterMetrics;
  logger: Logger;
  /** Aborted when the router stops: pending retries give up (see `keepUnfinished`). */
  signal: AbortSignal;
  /**
   * What a delivery cut short by the stop becomes: left unfinished (true: the journal has it, the next
   * start delivers it) or a `router_shutdown` record in the dead-letter file (false: nothing else keeps it).
   */
  keepUnfinished: boolean;
  /** Feeds a reply event back into a broker's ingress (with the TTL it must carry). */
  reingest(reply: CloudEvent<unknown>, broker: string, ttl: number): Promise<void>;
  send(
    url: string,
    event: CloudEvent<unknown>,
    options: {
      format: 'binary' | 'json';
      timeoutMs: number;
      dispatcher: EventDispatcher;
      headers?: Record<string, string>;
    },
  ): Promise<PostResult>;
  /** Holds sends to a local Service that is known to be down (service-readiness.ts); none: never held. */
  readiness?: ServiceReadiness;
  /** The sender token of a delivery (the Trigger's identity, the target's audience), when sender identity is on. */
  credentials?(trigger: TriggerRoute, target: 'subscriber' | 'dead-letter-sink'): Promise<Record<string, string>>;
}

export interface DeliverInput {
  event: CloudEvent<unknown>;
  /** The broker TTL of this event (Knative `knativebrokerttl`), reattached to a reply. */
  ttl: number;
  broker: string;
  trigger: TriggerRoute;
}

type Attempts =
  | { ok: true; result: PostResult }
  | { ok: false; status?: number; body: Buffer; error?: string; aborted: boolean };

/** Knative (eventing pkg/kncloudevents attributes): `knativeerrordata` is at most 1024 characters of base64. */
export const KNATIVE_ERROR_DATA_MAX_LENGTH = 1024;

/** Network errors that say the process behind the URL is gone (refused, or its socket died with it). */
const LOST_SERVICE = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET']);

const ceOf = (event: CloudEvent<unknown>) => ({ id: event.id, type: event.type, subject: event.subject });

/**
 * Sends with the Trigger's retry policy: retryable answers (5xx, 404, 408, 409, 429) and network errors
 * are tried again after the backoff, up to `retry` times; any other answer ends it at once.
 */
async function sendWithRetries(
  url: string,
  event: CloudEvent<unknown>,
  policy: DeliveryPolicy,
  deps: DeliverDeps,
  context: { trigger: string; target: 'subscriber' | 'dead-letter-sink'; route?: TriggerRoute },
): Promise<Attempts> {
  let last: Attempts = { ok: false, body: Buffer.alloc(0), aborted: false };
  for (let attempt = 1; attempt <= policy.retry + 1; attempt += 1) {
    // Waiting for a Service to come up holds no send slot and spends no attempt; a stop ends the wait.
    const held = deps.readiness?.ready(url);
    if (held) {
      deps.metrics.held.inc();
      await held.finally(() => deps.metrics.held.dec());
    }
    if (deps.signal.aborted) break;
    try {
      const headers = context.route && (await deps.credentials?.(context.route, context.target));
      const result = await deps.limiter(() =>
        deps.send(url, event, {
          format: policy.format,
          timeoutMs: policy.timeoutMs,
          dispatcher: deps.dispatcher,
          ...(headers ? { headers } : {}),
        }),
      );
      const verdict = deliveryVerdict(result.status);
      if (verdict === 'delivered') return { ok: true, result };
      last = { ok: false, status: result.status, body: result.body, aborted: false };
      if (verdict === 'permanent') {
        deps.logger.warn(
          { ...context, url, ce: ceOf(event), attempt, status: result.status, retry: false },
          'delivery attempt failed',
        );
        return last;
      }
    } catch (error) {
      // Knative's dispatcher reports a failed request as 500 with "dispatch error: …" as the body.
      const message = error instanceof Error ? error.message : String(error);
      if (LOST_SERVICE.has(String((error as { code?: unknown }).code))) deps.readiness?.refused(url);
      last = { ok: false, body: Buffer.from(`dispatch error: ${message}`), error: message, aborted: false };
    }
    const more = attempt <= policy.retry && !deps.signal.aborted;
    const delayMs = more ? retryDelayMs(policy, attempt) : undefined;
    deps.logger.warn(
      { ...context, url, ce: ceOf(event), attempt, status: last.status, error: last.error, retry: more, delayMs },
      'delivery attempt failed',
    );
    if (!more) break;
    if (context.target === 'subscriber') deps.metrics.retried.inc({ trigger: context.trigger });
    // Shutdown must not wait out a backoff: an abort ends the wait at once.
    deps.metrics.backingOff.inc();
    await sleep(delayMs!, undefined, { signal: deps.signal })
      .catch(() => undefined)
      .finally(() => deps.metrics.backingOff.dec());
  }
  return { ...last, aborted: deps.signal.aborted };
}

/** The original event plus Knative's error extensions, as a dead-letter sink receives it. */
export function withErrorExtensions(
  event: CloudEvent<unknown>,
  destination: string,
  failure: { status?: number; body: Buffer },
): CloudEvent<unknown> {
  const rawLimit = (KNATIVE_ERROR_DATA_MAX_LENGTH / 4) * 3;
  return event.cloneWith(
    {
      knativeerrordest: destination,
      knativeerrorcode: String(failure.status ?? 500),
      knativeerrordata: failure.body.subarray(0, rawLimit).toString('base64'),
    },
    false,
  ) as CloudEvent<unknown>;
}

/** How a delivery came out: it ended (delivered, or a dead letter), or the stop left it unfinished. */
export type DeliveryEnd = 'ended' | 'left';

/**
 * Delivers one event to one Trigger, as the Knative broker filter and dispatcher do:
 * send with retries → on success feed a reply back into the broker → otherwise the dead-letter sink
 * (with the same retries) → otherwise a line in the dead-letter file. Never ends without a record.
 */
export async function deliverToTrigger(input: DeliverInput, deps: DeliverDeps): Promise<DeliveryEnd> {
  const { event, trigger, broker } = input;
  const record = async (
    fields: Omit<DeadLetterRecord, 'at' | 'event' | 'trigger' | 'broker'>,
    dead: CloudEvent<unknown>,
  ) => {
    deps.metrics.deadLettered.inc({ trigger: trigger.key, destination: 'file' });
    deps.logger.error({ trigger: trigger.key, ce: ceOf(event), destination: 'file', ...fields }, 'event dead-lettered');
    await deps.deadLetters.append({ ...fields, broker, trigger: trigger.key, event: dead });
  };

  // Step 1: a subscriber without a local URL cannot be tried at all.
  if ('unresolved' in trigger.subscriber) {
    await record({ reason: 'subscriber_unresolved', error: trigger.subscriber.unresolved }, event);
    return 'ended';
  }
  const subscriber = trigger.subscriber.url;

  // Step 2: the subscriber, with the Trigger's retries and backoff.
  const outcome = await sendWithRetries(subscriber, event, trigger.policy, deps, {
    trigger: trigger.key,
    target: 'subscriber',
    route: trigger,
  });

  // Step 3: delivered; a reply event goes back into the same broker.
  if (outcome.ok) {
    deps.metrics.delivered.inc({ trigger: trigger.key });
    const reply = replyEventOf(outcome.result);
    if (reply) await deps.reingest(reply, broker, input.ttl);
    return 'ended';
  }

  const failure = { subscriber, status: outcome.status, error: outcome.error };
  const dead = withErrorExtensions(event, subscriber, outcome);
  if (outcome.aborted) {
    if (deps.keepUnfinished) return 'left';
    await record({ reason: 'router_shutdown', ...failure }, dead);
    return 'ended';
  }

  // Step 4: the dead-letter sink, with the same retry policy (Knative sends it with the same RetryConfig).
  const sink = trigger.policy.deadLetterSink;
  if (!sink) {
    await record({ reason: 'no_dead_letter_sink', ...failure }, dead);
    return 'ended';
  }
  if ('unresolved' in sink) {
    await record({ reason: 'dead_letter_sink_unresolved', ...failure, error: sink.unresolved }, dead);
    return 'ended';
  }
  const sunk = await sendWithRetries(sink.url, dead, trigger.policy, deps, {
    trigger: trigger.key,
    target: 'dead-letter-sink',
    route: trigger,
  });
  if (sunk.ok) {
    deps.metrics.deadLettered.inc({ trigger: trigger.key, destination: 'sink' });
    deps.logger.error(
      {
        trigger: trigger.key,
        ce: ceOf(event),
        destination: 'sink',
        sink: sink.url,
        subscriber,
        status: outcome.status,
        error: outcome.error,
      },
      'event dead-lettered',
    );
    return 'ended';
  }
  if (sunk.aborted && deps.keepUnfinished) return 'left';

  // Step 5: the last resort.
  const why =
    sunk.status !== undefined
      ? `dead-letter sink ${sink.url} answered ${sunk.status}`
      : `dead-letter sink ${sink.url}: ${sunk.error}`;
  await record(
    {
      reason: 'dead_letter_sink_failed',
      ...failure,
      error: `${outcome.error ?? `subscriber answered ${outcome.status}`}; ${why}`,
    },
    dead,
  );
  return 'ended';
}
