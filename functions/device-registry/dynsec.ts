import { randomUUID } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import { DependencyUnavailableError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';

/**
 * A client of Mosquitto's dynamic-security control API (mosquitto.org/documentation/dynamic-security):
 * JSON `{"commands":[…]}` published to `$CONTROL/dynamic-security/v1`, answered as `{"responses":[…]}` on
 * `…/v1/response`, each response carrying the `correlationData` of its command. Several commands share
 * one publish, so a bulk registration costs one round trip per chunk.
 */
export const CONTROL_TOPIC = '$CONTROL/dynamic-security/v1';
const RESPONSE_TOPIC = `${CONTROL_TOPIC}/response`;

export type DynsecCommand = { command: string } & Record<string, unknown>;
export interface DynsecResponse {
  command: string;
  error?: string;
  data?: unknown;
}

export interface DynsecClient {
  /** Sends the commands and resolves with one response per command, in order. 503 when the broker is down. */
  send(commands: DynsecCommand[]): Promise<DynsecResponse[]>;
  /** Resolves when the control connection is up (health check). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface DynsecOptions {
  url: string;
  username?: string;
  password?: string;
  logger: Logger;
  timeoutMs?: number;
  /** Extra wait per command of a batch (see `send`). */
  perCommandMs?: number;
}

export function createDynsecClient(options: DynsecOptions): DynsecClient {
  const timeoutMs = options.timeoutMs ?? 5_000;
  const perCommandMs = options.perCommandMs ?? 50;
  const pending = new Map<string, { resolve: (response: DynsecResponse) => void }>();
  let client: MqttClient | undefined;
  let ready: Promise<MqttClient> | undefined;

  function connect(): Promise<MqttClient> {
    if (client?.connected) return Promise.resolve(client);
    if (ready) return ready;
    if (!client) {
      client = mqtt.connect(options.url, {
        username: options.username,
        password: options.password,
        // A fresh clean session: control answers are only wanted while a request waits for them.
        clientId: `device-registry-${randomUUID().slice(0, 8)}`,
        clean: true,
        reconnectPeriod: 1_000,
        connectTimeout: Math.min(timeoutMs, 3_000),
        protocolVersion: 5,
        // mqtt-packet's default number cache builds 65,536 two-byte Buffers on the first packet written: ~80 ms of
        // a cold start and its garbage (docs/performance.md, "Cold start"); a few control messages need none.
        writeCache: false,
      });
      client.on('message', (_topic, payload) => onResponses(payload));
      client.on('error', (error) => options.logger.warn({ err: error }, 'dynsec connection error'));
    }
    const current = client;
    ready = new Promise<MqttClient>((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        reject(new DependencyUnavailableError('mqtt broker', new Error('connect timeout')));
      }, timeoutMs);
      const onConnect = () => {
        current.subscribe(RESPONSE_TOPIC, { qos: 1 }, (error, granted) => {
          cleanup();
          if (error || granted?.[0]?.qos === 128)
            reject(
              new DependencyUnavailableError('mqtt broker', error ?? new Error('not allowed to read dynsec responses')),
            );
          else resolve(current);
        });
      };
      const cleanup = () => {
        clearTimeout(timer);
        current.off('connect', onConnect);
        ready = undefined;
      };
      if (current.connected) onConnect();
      else current.once('connect', onConnect);
    });
    return ready;
  }

  function onResponses(payload: Buffer): void {
    let parsed: { responses?: (DynsecResponse & { correlationData?: string })[] };
    try {
      parsed = JSON.parse(payload.toString('utf8'));
    } catch {
      return;
    }
    for (const response of parsed.responses ?? []) {
      const id = response.correlationData;
      const waiter = id === undefined ? undefined : pending.get(id);
      if (!waiter) continue;
      pending.delete(id!);
      waiter.resolve({ command: response.command, error: response.error, data: response.data });
    }
  }

  return {
    async send(commands) {
      if (commands.length === 0) return [];
      const connected = await connect();
      const ids = commands.map(() => randomUUID());
      const answers = ids.map((id) => new Promise<DynsecResponse>((resolve) => pending.set(id, { resolve })));
      const payload = JSON.stringify({
        commands: commands.map((command, i) => ({ ...command, correlationData: ids[i] })),
      });
      let timer: NodeJS.Timeout | undefined;
      try {
        // Mosquitto 2.0.11 rewrites its whole dynsec JSON file after every command (measured: 500 clients take
        // 3.7 s into an empty config, 12.7 s next to 1,500 others), so the wait grows with the batch.
        const budget = timeoutMs + commands.length * perCommandMs;
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new DependencyUnavailableError('mqtt broker', new Error('no dynsec response'))),
            budget,
          );
        });
        await Promise.race([connected.publishAsync(CONTROL_TOPIC, payload, { qos: 1 }), timeout]);
        return await Promise.race([Promise.all(answers), timeout]);
      } catch (error) {
        // Drop the connection with whatever it still queues: a command sent after we gave up (and perhaps
        // compensated in MongoDB) must not reach the broker later.
        const stale = client;
        client = undefined;
        ready = undefined;
        stale?.end(true);
        throw error instanceof DependencyUnavailableError
          ? error
          : new DependencyUnavailableError('mqtt broker', error);
      } finally {
        clearTimeout(timer);
        for (const id of ids) pending.delete(id);
      }
    },
    async ping() {
      await connect();
    },
    async close() {
      const current = client;
      client = undefined;
      ready = undefined;
      await current?.endAsync(true);
    },
  };
}
