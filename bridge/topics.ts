// The device-side topic scheme (ARCHITECTURE "MQTT topics"): which topics the bridge consumes, how a topic
// names its device, and where a device hears why a message was refused.

export type InboundKind =
  | 'telemetry'
  | 'state'
  | 'status'
  | 'ack'
  | 'provisioning'
  | 'job-get'
  | 'job-start-next'
  | 'job-describe'
  | 'job-update';

export interface InboundTopic {
  kind: InboundKind;
  /** The device the topic belongs to; for provisioning (no device yet) the request id. */
  subject: string;
  deviceId?: string;
  commandId?: string;
  requestId?: string;
  jobId?: string;
}

export interface TopicRefusal {
  code: 'topic_outside_scheme';
  message: string;
}

/**
 * Ids that the bridge accepts in a topic level: what AWS IoT allows for thing names plus `.`. The broker
 * matches `+` against an empty level too (MQTT 3.1.1 §4.7.1.3), so `devices//telemetry` reaches us.
 */
const ID = /^[A-Za-z0-9_.:-]{1,128}$/;
export const isValidId = (value: string) => ID.test(value);

/** The filters of the shared subscription (MQTT5 §4.8.2; Mosquitto also honours `$share` for 3.1.1). */
export function subscriptionFilters(group: string): string[] {
  return [
    `$share/${group}/devices/+/telemetry`,
    `$share/${group}/devices/+/state/reported`,
    `$share/${group}/devices/+/status`,
    `$share/${group}/devices/+/commands/+/ack`,
    `$share/${group}/provisioning/+/request`,
    // Jobs requests only: the answers and notifications (`…/accepted`, `…/notify`) have other level counts.
    `$share/${group}/devices/+/jobs/get`,
    `$share/${group}/devices/+/jobs/start-next`,
    `$share/${group}/devices/+/jobs/+/get`,
    `$share/${group}/devices/+/jobs/+/update`,
  ];
}

function kindOf(levels: string[]): InboundKind | undefined {
  if (levels[0] === 'provisioning') return levels.length === 3 && levels[2] === 'request' ? 'provisioning' : undefined;
  if (levels[0] !== 'devices') return undefined;
  const rest = levels.slice(2).join('/');
  if (rest === 'telemetry') return 'telemetry';
  if (rest === 'state/reported') return 'state';
  if (rest === 'status') return 'status';
  if (levels.length === 5 && levels[2] === 'commands' && levels[4] === 'ack') return 'ack';
  if (levels[2] === 'jobs') return jobKindOf(levels);
  return undefined;
}

/** `devices/{id}/jobs/get|start-next` and `devices/{id}/jobs/{jobId}/get|update` (functions/jobs/device-topics.ts). */
function jobKindOf(levels: string[]): InboundKind | undefined {
  if (levels.length === 4 && levels[3] === 'get') return 'job-get';
  if (levels.length === 4 && levels[3] === 'start-next') return 'job-start-next';
  if (levels.length === 5 && levels[4] === 'get') return 'job-describe';
  if (levels.length === 5 && levels[4] === 'update') return 'job-update';
  return undefined;
}

/** Reads a received topic; anything else than the scheme (odd levels, empty or invalid ids) is refused. */
export function parseInboundTopic(
  topic: string,
): { ok: true; value: InboundTopic } | { ok: false; refusal: TopicRefusal } {
  const levels = topic.split('/');
  const kind = kindOf(levels);
  const refuse = (message: string) => ({
    ok: false as const,
    refusal: { code: 'topic_outside_scheme' as const, message },
  });
  if (!kind) return refuse(`the topic ${topic} is not one the bridge consumes`);
  const id = levels[1]!;
  if (!isValidId(id)) return refuse(`the id "${id}" in ${topic} is not 1-128 characters of A-Z a-z 0-9 _ . : -`);
  if (kind === 'provisioning') return { ok: true, value: { kind, subject: id, requestId: id } };
  if (kind === 'ack') {
    const commandId = levels[3]!;
    if (!isValidId(commandId)) return refuse(`the command id "${commandId}" in ${topic} is not valid`);
    return { ok: true, value: { kind, subject: id, deviceId: id, commandId } };
  }
  if (kind === 'job-describe' || kind === 'job-update') {
    const jobId = levels[3]!;
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(jobId)) return refuse(`the job id "${jobId}" in ${topic} is not valid`);
    return { ok: true, value: { kind, subject: id, deviceId: id, jobId } };
  }
  return { ok: true, value: { kind, subject: id, deviceId: id } };
}

/**
 * Where the sender of `topic` hears about a refusal: `devices/{id}/errors` (the device may subscribe only
 * under its own prefix), `provisioning/{requestId}/response` for a device that has no id yet. Undefined
 * when the topic names nobody.
 */
export function replyTopicFor(topic: string): string | undefined {
  const levels = topic.split('/');
  const owner = levels[1];
  if (levels.length < 3 || owner === undefined) return undefined;
  if (levels[0] === 'devices') return `devices/${owner}/errors`;
  if (levels[0] === 'provisioning') return `provisioning/${owner}/response`;
  return undefined;
}

/**
 * A topic one may PUBLISH to: not empty, at most 65,535 UTF-8 bytes, no wildcards (MQTT 3.1.1 §4.7.3,
 * MQTT5 §4.7.3), no U+0000 (§1.5.3), and not a `$` topic, which belongs to the broker (§4.7.2).
 */
export function isValidPublishTopic(topic: string): boolean {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: U+0000 is forbidden in topic names [MQTT-4.7.3-2]
  return topic.length > 0 && Buffer.byteLength(topic) <= 65_535 && !/[+#\u0000]/.test(topic) && !topic.startsWith('$');
}
