import type { CloudEvent } from '../../shared/cloudevents.js';
import { deviceIdSchema } from '../../shared/devices.js';
import type { Emitter } from '../../shared/emitter.js';
import { AppError, InvalidInputError, toProblem } from '../../shared/errors.js';
import { type EventRoute, eventRoute, type HandlerContext } from '../../shared/function-app.js';
import { isJsonContentType, telemetryBatchDataSchema, telemetryBatchItemSchema } from '../../shared/telemetry-batch.js';
import { fastBatchItem } from './fast-parse.js';
import type { ItemOutcome, TelemetryMessage } from './ingest-telemetry.js';
import type { IngestMetrics } from './metrics.js';
import { EVENT_TYPES } from './schema.js';

export interface BatchRouteDeps {
  ingestBatch(messages: TelemetryMessage[], ctx: HandlerContext): Promise<ItemOutcome[]>;
  /** Posts to DEAD_LETTER_SINK (the dead-letters service), retried; throws 503 if it stays unavailable. */
  deadLetters: Emitter;
  metrics: IngestMetrics;
  now(): number;
}

/** Knative's dead-letter extensions (eventing "Dead Letter Sink"): `knativeerrordata` is ≤ 1024 base64 chars. */
const ERROR_DATA_BYTES = 768;

/**
 * The receive time as a Date, one Date for the consecutive items of a batch that share their millisecond (most
 * under load): a Date per message lives until the insert. Nothing mutates it; the samples of one message share
 * theirs already (receivedAt, and the ts of a sample without its own).
 */
function receivedDates(): (at: number) => Date {
  let last: Date | undefined;
  return (at) => {
    if (last === undefined || last.getTime() !== at) last = new Date(at);
    return last;
  };
}

/**
 * One item of a batch as the message it carries, or why it is no message at all (it cannot reach a device): an
 * AppError, told apart by `instanceof` rather than wrapped (an object less per item; issue 12's garbage).
 */
function parseItem(raw: unknown, now: number, dateOf: (at: number) => Date): TelemetryMessage | AppError {
  const fast = fastBatchItem(raw, dateOf);
  if (fast) return fast;
  const item = telemetryBatchItemSchema.safeParse(raw);
  if (!item.success) return InvalidInputError.fromZod(item.error, 'the batch item is invalid');
  const subject = deviceIdSchema.safeParse(item.data.subject);
  if (!subject.success) return InvalidInputError.fromZod(subject.error, 'the item subject must be a device id');
  if (!isJsonContentType(item.data.datacontenttype))
    return new InvalidInputError('the item data must be JSON', undefined, 'unsupported_content_type');
  const time = Date.parse(item.data.time);
  return {
    eventId: item.data.id,
    deviceId: subject.data,
    receivedAt: new Date(Number.isNaN(time) ? now : time),
    payload: item.data.data,
  };
}

/**
 * `io.kiot.telemetry.batch` (shared/telemetry-batch.ts): the bridge's device telemetry, many messages in one
 * event. The answer is 2xx once every valid message is durable; each refused message gets what a refused
 * single `io.kiot.telemetry.received` gets: a notice on its device's errors topic (from the use case) and a
 * dead-letter record. A 2xx cannot carry a refusal back through the Broker, so the record is POSTed here, to
 * the dead-letters service: the single event the message would have been, with Knative's error extensions
 * (`knativeerrorcode`, `knativeerrordata`) and the batch's id (`kiotbatchid`). Its replay goes through the
 * Broker (no `knativeerrordest`), which routes it to this function as a single event. A store failure fails
 * the batch (5xx, retried as a whole; what was stored is a duplicate then).
 */
export function telemetryBatchRoute(deps: BatchRouteDeps): EventRoute {
  return eventRoute({
    type: EVENT_TYPES.telemetryBatch,
    data: telemetryBatchDataSchema,
    async handle(event, items, ctx) {
      const now = deps.now();
      // The Broker's part of the latency (the router's journal, its queue, retries): the bridge stamps the close.
      const closedAt = event.time === undefined ? Number.NaN : Date.parse(event.time);
      if (Number.isFinite(closedAt)) deps.metrics.batchAge.observe(Math.max(0, now - closedAt) / 1000);
      const dateOf = receivedDates();
      const messages: TelemetryMessage[] = [];
      // The items that are no message, by position: usually none.
      const invalid = new Map<number, AppError>();
      for (let index = 0; index < items.length; index += 1) {
        const item = parseItem(items[index], now, dateOf);
        if (item instanceof AppError) invalid.set(index, item);
        else messages.push(item);
      }
      const outcomes = await deps.ingestBatch(messages, ctx);
      const refused: { index: number; error: AppError }[] = [];
      const counts = { stored: 0, duplicate: 0, refused: 0 };
      let next = 0;
      for (let index = 0; index < items.length; index += 1) {
        const error = invalid.size === 0 ? undefined : invalid.get(index);
        const outcome = error ? { outcome: 'refused' as const, error } : outcomes[next++]!;
        counts[outcome.outcome] += 1;
        if (outcome.outcome === 'refused') refused.push({ index, error: outcome.error });
      }
      deps.metrics.batchItems.observe(items.length);
      for (const [outcome, count] of Object.entries(counts))
        if (count > 0) deps.metrics.messages.inc({ outcome }, count);
      ctx.annotate?.({ messages: { total: items.length, ...counts } });
      await Promise.all(refused.map(({ index, error }) => deadLetter(event, items[index], index, error, deps)));
      if (ctx.logger.isLevelEnabled('debug')) {
        for (const { index, error } of refused)
          ctx.logger.debug({ batch: event.id, item: index, error: toProblem(error).body.error }, 'batch item refused');
      }
    },
  });
}

/** The dead-letter record of a refused item: the single event it would have been, and why it was refused. */
function deadLetter(
  batch: CloudEvent<unknown>,
  raw: unknown,
  index: number,
  error: AppError,
  deps: BatchRouteDeps,
): Promise<unknown> {
  const item = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
  const text = (value: unknown) => (typeof value === 'string' && value.length > 0 ? value : undefined);
  const problem = toProblem(error);
  const answer = Buffer.from(JSON.stringify(problem.body)).subarray(0, ERROR_DATA_BYTES).toString('base64');
  return deps.deadLetters.emit({
    type: EVENT_TYPES.telemetry,
    // An item without a usable id still gets a record, under an id derived from its place in the batch.
    id: text(item.id)?.slice(0, 256) ?? `${batch.id}#${index}`,
    source: batch.source,
    ...(text(item.subject) ? { subject: text(item.subject)!.slice(0, 256) } : {}),
    ...(text(item.time) ? { time: text(item.time)! } : {}),
    data: item.data ?? null,
    extensions: {
      knativeerrorcode: String(problem.status),
      knativeerrordata: answer,
      kiotbatchid: batch.id,
    },
  });
}
