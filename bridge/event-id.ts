import { hash, randomUUID } from 'node:crypto';

export interface EventIdInput {
  /** The device id from the topic (the request id for provisioning). */
  subject: string;
  /** The device's own name for the message (`msgId` scoped by `ts`: payload.ts `messageKeyOf`), if it gave one. */
  msgId?: string;
  /** The client id of the bridge session the message arrived on. */
  sessionId: string;
  /** The MQTT packet identifier; absent for QoS 0. */
  packetId?: number;
  topic: string;
  payload: Buffer;
}

/**
 * The CloudEvent id of one MQTT message: the same when the broker delivers the message again, so
 * consumers can drop the duplicate (ARCHITECTURE "CloudEvents").
 *
 * Why this works: a QoS 1 message that was not acknowledged is resent on the same session with its
 * ORIGINAL packet identifier (MQTT 3.1.1 §4.4, MQTT5 §4.4, [MQTT-4.4.0-1]), and our session ids are
 * stable across restarts. So (session client id, packet id, topic, payload hash) names the message.
 *
 * The limits, and why `msgId` wins when the device sends one:
 * - A packet id is reused once acknowledged, so two different messages with the same topic and a
 *   byte-identical payload, given the same packet id on the same session, get the same id and one is
 *   taken for a duplicate (for example two `online` births 65,535 messages apart, inside the consumer's
 *   dedup window). Unlikely, but only a device-chosen id rules it out.
 * - If a session is lost (expired, or a broker without persistence restarts) the broker cannot resend,
 *   and if a broker hands an unacknowledged shared-subscription message to another member (MQTT5 §4.8.2
 *   allows it) the session id differs: the consumer then sees a duplicate under a new id.
 * `${deviceId}:${msgId}@${ts}` has neither problem; it needs msgIds unique per device among messages with the
 * same `ts`, which holds across a reboot that restarts the device's counter (payload.ts `messageKeyOf`).
 * QoS 0 has no redelivery (§4.3.1, at most once), so any unique id does.
 */
export function eventIdFor(input: EventIdInput): string {
  if (input.msgId !== undefined) return `${input.subject}:${input.msgId}`;
  if (input.packetId === undefined) return randomUUID();
  // One-shot hash (no Hash object per message); the payload joins the header as one buffer.
  const header = Buffer.from(`${input.sessionId}\n${input.packetId}\n${input.topic}\n`);
  return `mqtt-${hash('sha256', Buffer.concat([header, input.payload]), 'hex').slice(0, 32)}`;
}
