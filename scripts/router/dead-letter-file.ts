import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import type { CloudEventV1 } from '../../shared/cloudevents.js';
import { type DurableAppend, openDurableAppend } from './durable-append.js';

/** Why an event ended in the dead-letter file rather than with a subscriber or a dead-letter sink. */
export const deadLetterReasons = [
  /** POSTed to the router's own `/dead-letters` (it stands in for the dead-letter service). */
  'received',
  /** Delivery failed and the Trigger has no dead-letter sink. */
  'no_dead_letter_sink',
  /** Delivery failed and the dead-letter sink has no local URL. */
  'dead_letter_sink_unresolved',
  /** Delivery failed and the dead-letter sink failed as well. */
  'dead_letter_sink_failed',
  /** The subscriber has no local URL (its Service is not in ROUTER_SERVICES). */
  'subscriber_unresolved',
  /** A reply event looped until the broker TTL ran out (Knative drops it; we keep a record). */
  'ttl_exhausted',
  /** The router stopped before delivery finished. */
  'router_shutdown',
] as const;

export const deadLetterRecordSchema = z.object({
  at: z.string(),
  reason: z.enum(deadLetterReasons),
  broker: z.string().optional(),
  trigger: z.string().optional(),
  subscriber: z.string().optional(),
  status: z.number().int().optional(),
  error: z.string().optional(),
  /** The event in the structured JSON form (CloudEvents JSON format), extensions included. */
  event: z.record(z.string(), z.unknown()),
});

export type DeadLetterRecord = z.infer<typeof deadLetterRecordSchema>;

export interface DeadLetterFile {
  readonly path: string;
  /** Resolves once the record is on disk (fdatasync): only then may the event be let go. */
  append(record: Omit<DeadLetterRecord, 'at' | 'event'> & { event: CloudEventV1<unknown> }): Promise<void>;
  list(): Promise<DeadLetterRecord[]>;
  close(): Promise<void>;
}

/**
 * The last resort: one JSON line per event that no subscriber and no dead-letter sink took. Lines are
 * appended in order with a group commit (durable-append.ts); the file is created with its directory on
 * first use.
 */
export function createDeadLetterFile(path: string): DeadLetterFile {
  let file: Promise<DurableAppend> | undefined;
  const opened = () => {
    file ??= openDurableAppend(path).catch((error: unknown) => {
      file = undefined;
      throw error;
    });
    return file;
  };
  return {
    path,
    async append(record) {
      const { event, ...rest } = record;
      const line = `${JSON.stringify({ at: new Date().toISOString(), ...rest, event: toJson(event) })}\n`;
      await (await opened()).append(line);
    },
    async close() {
      if (file) await (await file.catch(() => undefined))?.close();
      file = undefined;
    },
    async list() {
      let text: string;
      try {
        text = await readFile(path, 'utf8');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
        throw error;
      }
      const records: DeadLetterRecord[] = [];
      for (const line of text.split('\n')) {
        if (line.trim() === '') continue;
        try {
          const parsed = deadLetterRecordSchema.safeParse(JSON.parse(line));
          if (parsed.success) records.push(parsed.data);
        } catch {
          // a torn last line (crash mid-write) is skipped, not fatal
        }
      }
      return records;
    },
  };
}

function toJson(event: CloudEventV1<unknown>): Record<string, unknown> {
  const withToJson = event as CloudEventV1<unknown> & { toJSON?: () => Record<string, unknown> };
  const json = withToJson.toJSON ? withToJson.toJSON() : { ...event };
  return JSON.parse(JSON.stringify(json)) as Record<string, unknown>;
}
