import type { IClientOptions, IClientPublishOptions, MqttClient } from 'mqtt';
import { type AppError, DependencyUnavailableError, DomainRefusalError, RateLimitedError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';

export type MqttConnect = (url: string, options: IClientOptions) => MqttClient;

export interface Publisher {
  readonly client: MqttClient;
  connected(): boolean;
  /**
   * Publishes and resolves once the broker has acknowledged (PUBACK for QoS 1, PUBCOMP for QoS 2, the
   * write for QoS 0). Throws 503 while disconnected or when no acknowledgement comes in time.
   */
  publish(topic: string, payload: Buffer, options: IClientPublishOptions): Promise<void>;
  close(): Promise<void>;
}

export interface PublisherOptions {
  url: string;
  clientId: string;
  protocolVersion: 4 | 5;
  username?: string;
  password?: string;
  reconnectPeriod: number;
  ackTimeoutMs: number;
  connect: MqttConnect;
  logger: Logger;
}

// MQTT5 §3.4.2.1 PUBACK reason codes that a later retry can get past; the other failures are final.
const QUOTA_EXCEEDED = 0x97;
const SERVER_BUSY = 0x89;

function mapPublishError(error: Error & { code?: number }): AppError {
  if (error.code === QUOTA_EXCEEDED) return new RateLimitedError('the broker refused the publish: quota exceeded', 1);
  if (error.code === SERVER_BUSY) return new DependencyUnavailableError('mqtt broker', error);
  if (typeof error.code === 'number' && error.code >= 0x80) {
    return new DomainRefusalError('broker_refused', `the broker refused the publish: ${error.message}`, {
      reasonCode: error.code,
    });
  }
  return new DependencyUnavailableError('mqtt broker', error);
}

/**
 * The bridge's one outgoing connection (stable client id `${base}-pub`). A clean session: it holds no
 * subscriptions, and what it publishes is acknowledged before the HTTP answer or the device error is done.
 */
export function createPublisher(options: PublisherOptions): Publisher {
  const client = options.connect(options.url, {
    clientId: options.clientId,
    clean: true,
    protocolVersion: options.protocolVersion,
    reconnectPeriod: options.reconnectPeriod,
    connectTimeout: 10_000,
    keepalive: 30,
    // Never queue while offline: the caller answers 503 and its sender retries.
    queueQoSZero: false,
    ...(options.username ? { username: options.username } : {}),
    ...(options.password ? { password: options.password } : {}),
  });
  client.on('error', (error) =>
    options.logger.warn({ err: error, clientId: options.clientId }, 'mqtt publisher error'),
  );
  client.on('connect', () => options.logger.info({ clientId: options.clientId }, 'mqtt publisher connected'));

  return {
    client,
    connected: () => client.connected,
    publish(topic, payload, publishOptions) {
      if (!client.connected) return Promise.reject(new DependencyUnavailableError('mqtt broker'));
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          // mqtt.js keeps a QoS 1/2 message and sends it again after a reconnect, so the sender's retry may
          // duplicate it: at least once, as for every kiot event.
          reject(new DependencyUnavailableError('mqtt broker', new Error('no acknowledgement in time')));
        }, options.ackTimeoutMs);
        client.publish(topic, payload, publishOptions, (error) => {
          clearTimeout(timer);
          if (error) reject(mapPublishError(error as Error & { code?: number }));
          else resolve();
        });
      });
    },
    async close() {
      await client.endAsync(true).catch(() => undefined);
    },
  };
}
