import { randomUUID } from 'node:crypto';
import type { MqttClient } from 'mqtt';
import type { Emitter } from '../../shared/emitter.js';
import { DependencyUnavailableError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';

/** One MQTT message to one device (QoS 1, not retained): `notify`, `notify-next`, an answer to a request. */
export interface DeviceMessage {
  deviceId: string;
  topic: string;
  payload: unknown;
}

export const MQTT_PUBLISH_TYPE = 'io.kiot.mqtt.publish';

/**
 * How jobs reaches devices. Resolves once every message is with the broker (or the Broker, for the events path);
 * a broker or sink that stays away rejects with a 503, so the event or tick that caused the messages is retried
 * (at least once: a device may hear a notification twice, and every message carries the versions to tell).
 */
export interface DevicePublisher {
  publish(messages: readonly DeviceMessage[]): Promise<void>;
  close(): Promise<void>;
}

/** Through the Broker: one `io.kiot.mqtt.publish` event per message, which the bridge publishes. */
export function createEventPublisher(emitter: Emitter): DevicePublisher {
  return {
    async publish(messages) {
      let next = 0;
      const worker = async () => {
        while (next < messages.length) {
          const message = messages[next++]!;
          await emitter.emit({
            type: MQTT_PUBLISH_TYPE,
            subject: message.deviceId,
            data: { topic: message.topic, payload: message.payload, qos: 1, retain: false },
          });
        }
      };
      await Promise.all(Array.from({ length: Math.min(32, messages.length) }, worker));
    },
    close: async () => undefined,
  };
}

export interface MqttPublisherOptions {
  url: string;
  username?: string;
  password?: string;
  logger: Logger;
  /** How long a batch may go without a PUBACK before the call fails with 503. */
  timeoutMs?: number;
}

/**
 * Straight to the broker over one MQTT connection of this instance (JOBS_MQTT_URL): a job's fan-out is two
 * messages per device and an answer per device request, and each event through the Broker costs two HTTP
 * deliveries and the bridge's work (bench:jobs). QoS 1 PUBACKs confirm every message; the connection opens on
 * first use, so an idle instance holds none. Its credential may publish only to `devices/+/jobs/#`.
 */
export function createMqttPublisher(options: MqttPublisherOptions): DevicePublisher {
  const timeoutMs = options.timeoutMs ?? 10_000;
  let client: MqttClient | undefined;
  // mqtt.js loads with the first connection, not with the function: a start that publishes nothing does not
  // evaluate it (3 % of jobs' start in its profile; docs/performance.md, "Cold start").
  let mqttModule: Promise<typeof import('mqtt')> | undefined;

  async function connection(): Promise<MqttClient> {
    if (client) return client;
    mqttModule ??= import('mqtt');
    const { default: mqtt } = await mqttModule;
    if (client) return client;
    client = mqtt.connect(options.url, {
      username: options.username,
      password: options.password,
      clientId: `kiot-jobs-${randomUUID().slice(0, 8)}`,
      clean: true,
      reconnectPeriod: 1_000,
      connectTimeout: Math.min(timeoutMs, 5_000),
      protocolVersion: 4,
      // mqtt-packet's default number cache builds 65,536 two-byte Buffers on the first packet written (~80 ms and
      // their garbage, the first fan-out after a cold start pays them); a packet's few numbers are cheap to write.
      writeCache: false,
    });
    client.on('error', (error) => options.logger.warn({ err: error }, 'jobs MQTT connection error'));
    const stream = client.stream as { setNoDelay?: (on: boolean) => void } | undefined;
    client.on('connect', () => (client?.stream as typeof stream)?.setNoDelay?.(true));
    return client;
  }

  return {
    async publish(messages) {
      if (messages.length === 0) return;
      const current = await connection();
      // A stall timeout, not a deadline for the whole batch: a release of thousands of messages on a busy broker
      // takes as long as it takes, and fails only when no PUBACK came for `timeoutMs` (a deadline per batch made
      // a slow pass fail, and its repair publish the same batch again, and again).
      let timer: NodeJS.Timeout | undefined;
      let stalled: (error: Error) => void = () => undefined;
      const stall = new Promise<never>((_, reject) => {
        stalled = reject;
      });
      const arm = () => {
        clearTimeout(timer);
        timer = setTimeout(
          () => stalled(new DependencyUnavailableError('mqtt broker', new Error('no PUBACK in time'))),
          timeoutMs,
        );
      };
      arm();
      try {
        await Promise.race([
          Promise.all(
            messages.map((message) =>
              current.publishAsync(message.topic, JSON.stringify(message.payload), { qos: 1, retain: false }).then(arm),
            ),
          ),
          stall,
        ]);
      } catch (error) {
        throw error instanceof DependencyUnavailableError
          ? error
          : new DependencyUnavailableError('mqtt broker', error);
      } finally {
        clearTimeout(timer);
      }
    },
    async close() {
      const current = client;
      client = undefined;
      await current?.endAsync(true);
    },
  };
}
