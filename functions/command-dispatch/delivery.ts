import type { HandlerContext } from '../../shared/function-app.js';
import type { CommandDocument } from './command-repository.js';
import type { CommandDeps } from './deps.js';
import { commandTopic } from './lifecycle.js';
import { recordTransition } from './record-transition.js';
import type { DevicePayload } from './schema.js';

export const MQTT_PUBLISH_TYPE = 'io.kiot.mqtt.publish';

/**
 * Sends (or re-sends) one command to its device: an `io.kiot.mqtt.publish` event that a Trigger
 * brings to the bridge, which publishes it at QoS 1 on `devices/{id}/commands/{commandId}`.
 *
 * Publish first, record SENT second: if the sink is down the command stays QUEUED and the next
 * connect (or sweep) sends it; it never sits SENT without having been published. The SENT write is a
 * compare-and-set on `attempts`, so two flushes racing on one reconnect count one re-send.
 * The device dedupes by command id (the topic), so a second publish is harmless.
 */
export async function sendCommand(
  doc: CommandDocument,
  deps: CommandDeps,
  ctx: HandlerContext,
): Promise<CommandDocument | null> {
  const attempt = doc.attempts + 1;
  const payload: DevicePayload = { name: doc.name, params: doc.params ?? null, expiresAt: doc.expiresAt.toISOString() };
  await deps.emitter.emit({
    type: MQTT_PUBLISH_TYPE,
    id: `${doc._id}.publish.${attempt}`,
    subject: doc.deviceId,
    data: { topic: commandTopic(doc.deviceId, doc._id), payload, qos: 1, retain: false },
  });
  const at = deps.clock();
  return recordTransition(
    deps,
    doc._id,
    'SENT',
    {
      at,
      attempt,
      incAttempts: true,
      where: { attempts: doc.attempts, expiresAt: { $gt: at } },
      // A re-send happens on reconnect, when a backlog may be waiting behind it: its ack moves the queue on.
      set: {
        sentAt: at,
        deadlineAt: new Date(at.getTime() + doc.timeoutSeconds * 1000),
        ...(doc.attempts > 0 ? { backlog: true } : {}),
      },
    },
    ctx,
  );
}
