import { createHash } from 'node:crypto';
import { z } from 'zod';

/**
 * `io.kiot.device.registered.batch`: the registrations of one bulk call, many devices in one CloudEvent. Knative
 * Eventing delivers one event per request and has no batched delivery, so a fleet registered one event per device
 * costs the Broker (and the registry) one POST per device; a batch costs one per `DEVICE_BATCH_MAX_ITEMS`. Each
 * item holds everything the single `io.kiot.device.registered` event of that device would: its `id` (the
 * registry's outbox entry id, so a device later announced on its own again is a duplicate to drop), `subject`
 * (the device id), `time` and `data` (the device as registered). The producer is device-registry, the consumer
 * jobs (continuous jobs); shared/telemetry-batch.ts is the same idea for device telemetry.
 */
/** Devices per batch event: a 1,000-device bulk call is four events of some 60 KB each. */
export const DEVICE_BATCH_MAX_ITEMS = 250;

export const deviceBatchItemSchema = z.object({
  id: z.string().min(1).max(256),
  subject: z.string().min(1).max(256),
  time: z.iso.datetime({ offset: true }),
  data: z.unknown(),
});
export type DeviceBatchItem = z.infer<typeof deviceBatchItemSchema>;

/** The batch event's id derives from its items' ids: the same items emitted again make the same event. */
export function deviceBatchId(items: readonly DeviceBatchItem[]): string {
  const hash = createHash('sha256');
  for (const item of items) hash.update(item.id).update('\n');
  return `devices-${hash.digest('hex').slice(0, 32)}`;
}
