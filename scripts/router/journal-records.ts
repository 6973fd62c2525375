import { crc32 } from 'node:zlib';
import { z } from 'zod';

/*
 * The router journal's file format: one record per line, `<crc32 of the JSON, 8 hex digits> <JSON>\n`.
 * The checksum tells a whole record from one torn by a crash mid-write (or a block of zeros left by a
 * power cut), which is then skipped instead of misread.
 */

/** An event the broker accepted, and the Triggers it must reach (Knative: the Triggers whose filter matched). */
export const acceptedRecordSchema = z.object({
  a: z.number().int().nonnegative(),
  /** `namespace/name` of the Broker. */
  b: z.string(),
  /** The broker TTL a reply to this event carries (`knativebrokerttl`). */
  t: z.number().int(),
  /** Trigger keys (`namespace/name`). */
  k: z.array(z.string()).min(1),
  /** The event as subscribers get it, in the CloudEvents JSON format. */
  e: z.record(z.string(), z.unknown()),
});

/** One Trigger's delivery of an accepted event has ended: delivered, or in a dead-letter sink or file. */
export const doneRecordSchema = z.object({ d: z.number().int().nonnegative(), k: z.string() });

export type AcceptedRecord = z.infer<typeof acceptedRecordSchema>;
export type DoneRecord = z.infer<typeof doneRecordSchema>;
export type JournalRecord = AcceptedRecord | DoneRecord;

const checksum = (json: string) => crc32(json).toString(16).padStart(8, '0');

export function encodeRecord(record: JournalRecord): string {
  const json = JSON.stringify(record);
  return `${checksum(json)} ${json}\n`;
}

export interface DecodedSegment {
  records: JournalRecord[];
  /** Lines that failed their checksum or schema: a torn tail after a crash, or damage. */
  skipped: number;
}

export function decodeSegment(text: string): DecodedSegment {
  const records: JournalRecord[] = [];
  let skipped = 0;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const json = line.slice(9);
    if (line[8] !== ' ' || checksum(json) !== line.slice(0, 8)) {
      skipped += 1;
      continue;
    }
    let value: unknown;
    try {
      value = JSON.parse(json);
    } catch {
      skipped += 1;
      continue;
    }
    const accepted = typeof value === 'object' && value !== null && 'a' in value;
    const parsed = accepted ? acceptedRecordSchema.safeParse(value) : doneRecordSchema.safeParse(value);
    if (parsed.success) records.push(parsed.data);
    else skipped += 1;
  }
  return { records, skipped };
}
