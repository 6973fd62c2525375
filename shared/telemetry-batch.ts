import { z } from 'zod';

/**
 * The `data` of an `io.kiot.telemetry.batch` event: the contract between the bridge, which groups device
 * telemetry into batch events, and their consumers (telemetry-ingest; any downstream subscriber, e.g. a
 * Trigger to a KafkaSink). Knative Eventing delivers one event per request and has no batched delivery, so
 * the batching happens inside one CloudEvent: its `data` is a JSON array of items, each holding everything
 * an `io.kiot.telemetry.received` event has on its own. docs/telemetry-batch.md describes it for subscribers.
 */

/** What a consumer accepts in one batch: more than any bridge setting allows, fewer than a flood. */
export const MAX_BATCH_ITEMS = 10_000;

/**
 * One device message of a batch, named as the attributes of the single event it would otherwise be: `id`
 * (the bridge's deterministic event id, so a redelivered message dedups), `subject` (the device id), `time`
 * (when the bridge received it), `datacontenttype` and `data` (the device's JSON payload).
 */
export const telemetryBatchItemSchema = z.object({
  id: z.string().min(1).max(256),
  subject: z.string().min(1).max(256),
  time: z.iso.datetime({ offset: true }),
  datacontenttype: z.string().max(256).optional(),
  /** The device's payload; what it must hold is telemetry-ingest's rule, checked per item. */
  data: z.unknown(),
});
export type TelemetryBatchItem = z.infer<typeof telemetryBatchItemSchema>;

/**
 * The `data` of an `io.kiot.telemetry.batch` event. Items are checked one by one (`telemetryBatchItemSchema`)
 * by the consumer, so that one malformed item is refused on its own rather than failing its batch.
 */
export const telemetryBatchDataSchema = z.array(z.unknown()).min(1).max(MAX_BATCH_ITEMS);

/** Whether an item's content type is JSON (absent means JSON, as for a plain MQTT telemetry message). */
export function isJsonContentType(contentType: string | undefined): boolean {
  if (contentType === undefined) return true;
  const type = contentType.split(';')[0]!.trim().toLowerCase();
  return type === 'application/json' || type.endsWith('+json');
}
