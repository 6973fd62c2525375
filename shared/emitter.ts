import { randomUUID } from 'node:crypto';
import { CloudEvent } from './cloudevents.js';
import { AppError, DependencyUnavailableError } from './errors.js';
import {
  type BackoffPolicy,
  backoffDelayMs,
  deliveryVerdict,
  type EventDispatcher,
  postCloudEvent,
  sleep,
} from './event-transport.js';

export interface EmitInput {
  type: string;
  data: unknown;
  subject?: string;
  /** Give a stable id when the same cause may emit twice, so consumers can drop the duplicate. */
  id?: string;
  time?: string;
  /** The emitter's own `source` unless given: a record of another producer's event keeps that producer's. */
  source?: string;
  extensions?: Record<string, string>;
}

export interface Emitter {
  emit(input: EmitInput): Promise<CloudEvent<unknown>>;
}

export interface EmitterOptions {
  /** `K_SINK`: the Knative Broker's ingress, or the local router. */
  sink: string;
  /** The CloudEvents `source` of everything this component emits, e.g. `/kiot/telemetry-ingest`. */
  source: string;
  dispatcher?: EventDispatcher;
  /** Headers of every POST: the workload identity token for the Broker (shared/event-auth.ts `bearerHeader`). */
  headers?: () => Record<string, string>;
  attempts?: number;
  backoff?: BackoffPolicy;
  timeoutMs?: number;
}

/**
 * POSTs follow-up events to `K_SINK` in binary mode. Transient failures are retried a few times; if the
 * sink stays down the caller gets a 503 error, so the event that caused the emit is retried as a whole.
 */
export function createEmitter(options: EmitterOptions): Emitter {
  const attempts = options.attempts ?? 4;
  const backoff = options.backoff ?? { policy: 'exponential', baseMs: 25, maxMs: 1_000, jitter: true };
  return {
    async emit(input) {
      const event = new CloudEvent<unknown>({
        id: input.id ?? randomUUID(),
        source: input.source ?? options.source,
        type: input.type,
        subject: input.subject,
        time: input.time ?? new Date().toISOString(),
        datacontenttype: 'application/json',
        data: input.data,
        ...input.extensions,
      });
      let lastError: unknown;
      for (let attempt = 1; attempt <= attempts; attempt += 1) {
        try {
          const result = await postCloudEvent(options.sink, event, {
            dispatcher: options.dispatcher,
            timeoutMs: options.timeoutMs ?? 10_000,
            ...(options.headers ? { extraHeaders: options.headers() } : {}),
          });
          const verdict = deliveryVerdict(result.status);
          if (verdict === 'delivered') return event;
          if (verdict === 'permanent') {
            // The sink refused the event itself: a bug on our side, not a fault to wait out.
            throw new AppError(
              500,
              'event_rejected_by_sink',
              `the event sink refused ${input.type} with ${result.status}`,
            );
          }
          lastError = new Error(`sink answered ${result.status}`);
        } catch (error) {
          if (error instanceof AppError) throw error;
          lastError = error;
        }
        if (attempt < attempts) await sleep(backoffDelayMs(backoff, attempt));
      }
      throw new DependencyUnavailableError('event sink', lastError);
    },
  };
}
