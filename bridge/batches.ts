import { createHash } from 'node:crypto';
import { CloudEvent } from '../shared/cloudevents.js';
import type { Logger } from '../shared/logger.js';
import { type CloseReason, createBatcher } from './batcher.js';
import type { Delivery, StillWanted } from './delivery.js';
import type { InboundMessage } from './device-events.js';
import type { BridgeMetrics } from './metrics.js';
import { singleEventOf, type TelemetryItem } from './telemetry-items.js';

/** The batching of device telemetry (bridge config `BATCH_*`). */
export interface BatchSettings {
  /** Messages per batch at most; 1 sends each message as its own `io.kiot.telemetry.received`. */
  maxCount: number;
  /** Bytes of a batch's JSON data at most; a message bigger than that on its own travels alone. */
  maxBytes: number;
  /** How long a batch waits for more messages after its first. */
  lingerMs: number;
}

export const TELEMETRY_BATCH_TYPE = 'io.kiot.telemetry.batch';

export interface TelemetryBatchesOptions {
  batch: BatchSettings;
  source: string;
  delivery: Delivery;
  metrics: BridgeMetrics;
  logger: Logger;
  /** The single-event path of a message: what a message takes when the sink refuses its batch as a whole. */
  forwardAlone(message: InboundMessage, event: CloudEvent<unknown>, stillWanted: StillWanted): Promise<boolean>;
}

interface Entry {
  message: InboundMessage;
  item: TelemetryItem;
  stillWanted: StillWanted;
  settle(acknowledge: Promise<boolean>): void;
}

/**
 * The batch event of some items (shared/telemetry-batch.ts). Its id derives from the items' ids, so the same
 * messages batched again (a retry) make the same event. The data is the items' JSON joined as it is: JSON
 * text with a JSON content type goes on the wire unchanged (CloudEvents HTTP binding, binary mode).
 */
export function batchEventOf(items: readonly TelemetryItem[], source: string): CloudEvent<unknown> {
  const hash = createHash('sha256');
  for (const item of items) hash.update(`${item.id}\n`);
  return new CloudEvent<unknown>(
    {
      specversion: '1.0',
      id: `batch-${hash.digest('hex').slice(0, 32)}`,
      type: TELEMETRY_BATCH_TYPE,
      source,
      time: new Date().toISOString(),
      datacontenttype: 'application/json',
      data: `[${items.map((item) => item.json).join(',')}]`,
    },
    false,
  );
}

/**
 * Device telemetry in batches: messages wait in the open batch until it closes (count, size or linger), then
 * its event goes to the sink with the retries of any event (delivery.ts). Every message of a batch settles
 * with it: acknowledged after the 2xx, not at all when nobody waits any more (the broker sends them again and
 * their ids dedup). If the sink refuses a batch as a whole (a 4xx), each of its messages takes the single
 * path, so one that is really at fault is dead-lettered alone and the others still arrive.
 */
export function createTelemetryBatches(options: TelemetryBatchesOptions) {
  const { batch, metrics, logger } = options;
  const batcher = createBatcher<Entry>({
    maxCount: batch.maxCount,
    maxBytes: batch.maxBytes,
    lingerMs: batch.lingerMs,
    onClose: (entries, reason) => void send(entries, reason),
  });

  async function send(entries: Entry[], reason: CloseReason): Promise<void> {
    metrics.batches.inc({ reason });
    metrics.batchMessages.observe(entries.length);
    const event = batchEventOf(
      entries.map((entry) => entry.item),
      options.source,
    );
    // Retried while any of its messages is still wanted; those whose session is gone come again anyway.
    const stillWanted = () => entries.some((entry) => entry.stillWanted());
    const outcome = await options.delivery.forward(event, stillWanted).catch((error: unknown) => error as Error);
    if (outcome instanceof Error) {
      for (const entry of entries) entry.settle(Promise.reject(outcome));
      return;
    }
    if (outcome.kind === 'abandoned') {
      for (const entry of entries) entry.settle(Promise.resolve(false));
      return;
    }
    if (outcome.kind === 'refused') {
      logger.warn(
        { ce: { id: event.id, type: event.type }, messages: entries.length, status: outcome.status },
        'the sink refused a batch: its messages go one by one',
      );
      for (const entry of entries)
        entry.settle(options.forwardAlone(entry.message, singleEventOf(entry.item, options.source), entry.stillWanted));
      return;
    }
    metrics.forwarded.inc({ type: TELEMETRY_BATCH_TYPE });
    const now = Date.now();
    for (const entry of entries) {
      metrics.forwardLatency.observe((now - entry.message.receivedAt.getTime()) / 1000);
      entry.settle(Promise.resolve(true));
    }
    if (logger.isLevelEnabled('debug'))
      logger.debug({ ce: { id: event.id, type: event.type }, messages: entries.length, reason }, 'forwarded');
  }

  return {
    enabled: batch.maxCount > 1,
    /** Whether an item can go into a batch at all (a bigger one travels alone). */
    fits: (item: TelemetryItem) => item.bytes + 2 <= batch.maxBytes,
    add(message: InboundMessage, item: TelemetryItem, stillWanted: StillWanted): Promise<boolean> {
      return new Promise<boolean>((resolve, reject) =>
        batcher.add({ message, item, stillWanted, settle: (ack) => ack.then(resolve, reject) }, item.bytes),
      );
    },
    /** Sends the open batch now (a stopping bridge does not wait out the linger). */
    flush: () => batcher.flush(),
  };
}
