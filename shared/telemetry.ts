/**
 * The stored telemetry sample, the contract between the capability that writes raw samples
 * (telemetry-ingest) and those that read them (report-generation): one document per sample in the
 * `telemetry` collection. `_id` is derived from the event id and the sample's position, or from the
 * device's `msgId` scoped by its `ts`, so a redelivered message collides with itself in the unique `_id` index even when
 * Redis forgot it. Raw samples won over hour buckets by measurement (functions/telemetry-ingest/README.md).
 */
export const TELEMETRY_COLLECTION = 'telemetry';

export interface TelemetrySampleDocument {
  _id: string;
  deviceId: string;
  /** The sample's own time (the device's `ts`, else the event time). */
  ts: Date;
  metrics: Record<string, number>;
  eventId: string;
  /** The event's time: a message retried for hours keeps it. */
  receivedAt: Date;
  /** When the insert that stored it was issued: readers find newly stored samples by it (rollups). */
  ingestedAt?: Date;
  msgId?: string;
}
