import { setTimeout as delay } from 'node:timers/promises';
import { connect, type MqttClient } from 'mqtt';
import { type JobCounters, JobRunner } from './job-runner.js';

/** How long a stopping device waits for the broker to take its goodbye before it just closes. */
const STOP_TIMEOUT_MS = 2_000;

export interface DeviceCounters extends JobCounters {
  sent: number;
  errorsReceived: number;
  commandsAnswered: number;
  desiredApplied: number;
}

export interface SimulatedDeviceOptions {
  id: string;
  mqttUrl: string;
  secret?: string;
  protocolVersion: 4 | 5;
  batch: number;
  counters: DeviceCounters;
  random?: () => number;
  /** How a job's simulated install behaves (scripts/simulator/job-runner.ts). */
  jobs?: { installMs: number; failureRate: number };
}

/** The state a simulated device reports and that desired state can change. */
interface DeviceState {
  reportIntervalSeconds: number;
  firmware: string;
  led: 'on' | 'off';
}

/**
 * One simulated device: birth and last will on `devices/{id}/status`, telemetry with a `msgId`, answers
 * to commands (accepted, then succeeded with a result), applies desired state and reports it back.
 */
export class SimulatedDevice {
  private client?: MqttClient;
  private sequence = 0;
  private temperature: number;
  private readonly state: DeviceState = { reportIntervalSeconds: 1, firmware: '1.0.0', led: 'off' };
  private readonly random: () => number;
  /** Command ids already handled: a re-send after a reconnect carries the same id and must not run twice. */
  private readonly handledCommands = new Set<string>();
  private readonly jobs: JobRunner;

  constructor(private readonly options: SimulatedDeviceOptions) {
    this.random = options.random ?? Math.random;
    this.temperature = 18 + this.random() * 8;
    this.jobs = new JobRunner({
      id: options.id,
      secret: options.secret,
      installMs: options.jobs?.installMs ?? 1_000,
      failureRate: options.jobs?.failureRate ?? 0,
      counters: options.counters,
      random: this.random,
      onFirmware: (version) => {
        this.state.firmware = version;
        void this.report();
      },
    });
  }

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  async start(): Promise<void> {
    const { id } = this.options;
    const statusTopic = `devices/${id}/status`;
    this.client = connect(this.options.mqttUrl, {
      clientId: id,
      username: this.options.secret ? id : undefined,
      password: this.options.secret,
      protocolVersion: this.options.protocolVersion,
      clean: true,
      reconnectPeriod: 2_000,
      // docs/architecture.md: birth message and last will on devices/{id}/status, retained.
      will: { topic: statusTopic, payload: Buffer.from('offline'), qos: 1, retain: true },
    });
    const client = this.client;
    client.on('connect', () => {
      void client
        .subscribeAsync(
          [`devices/${id}/commands/+`, `devices/${id}/state/desired`, `devices/${id}/errors`, ...this.jobs.topics()],
          { qos: 1 },
        )
        .then(() => client.publishAsync(statusTopic, 'online', { qos: 1, retain: true }))
        .then(() => this.report())
        .then(() => this.jobs.connected(client))
        .catch(() => undefined);
    });
    client.on('message', (topic, payload) => this.onMessage(topic, payload));
    client.on('error', () => undefined);
    await new Promise<void>((resolve) => {
      if (client.connected) resolve();
      else client.once('connect', () => resolve());
    });
  }

  /** Publishes one telemetry message (one sample or a batch) at QoS 1. */
  async publishTelemetry(): Promise<void> {
    const client = this.client;
    if (!client?.connected) return;
    const samples = Array.from({ length: this.options.batch }, () => this.sample());
    const payload = samples.length === 1 ? samples[0] : samples;
    await client.publishAsync(`devices/${this.options.id}/telemetry`, JSON.stringify(payload), { qos: 1 });
    this.options.counters.sent += 1;
  }

  async stop(): Promise<void> {
    const client = this.client;
    if (!client) return;
    // A clean shutdown says goodbye itself: the last will is only for crashes. Bounded: with the broker
    // gone the goodbye would wait for a reconnect forever.
    const goodbye = client
      .publishAsync(`devices/${this.options.id}/status`, 'offline', { qos: 1, retain: true })
      .then(() => client.endAsync());
    const ended = await Promise.race([
      goodbye.then(
        () => true,
        () => false,
      ),
      delay(STOP_TIMEOUT_MS, false, { ref: false }),
    ]);
    if (!ended) await client.endAsync(true);
  }

  private sample() {
    this.sequence += 1;
    this.temperature += (this.random() - 0.5) * 0.4;
    return {
      ts: new Date().toISOString(),
      msgId: `${Date.now().toString(36)}-${this.sequence}`,
      metrics: {
        temperature: Math.round(this.temperature * 100) / 100,
        humidity: Math.round((40 + this.random() * 20) * 10) / 10,
        battery: Math.max(0, 100 - this.sequence * 0.01),
      },
    };
  }

  private onMessage(topic: string, payload: Buffer): void {
    if (this.client && this.jobs.onMessage(this.client, topic, payload)) return;
    const parts = topic.split('/');
    if (parts[2] === 'errors') {
      this.options.counters.errorsReceived += 1;
    } else if (parts[2] === 'commands' && parts[3]) {
      void this.answerCommand(parts[3], payload);
    } else if (parts[2] === 'state' && parts[3] === 'desired') {
      this.applyDesired(payload);
    }
  }

  private async answerCommand(commandId: string, payload: Buffer): Promise<void> {
    const client = this.client;
    if (!client) return;
    if (this.handledCommands.has(commandId)) return;
    this.handledCommands.add(commandId);
    if (this.handledCommands.size > 1_000) this.handledCommands.delete(this.handledCommands.values().next().value!);
    const ackTopic = `devices/${this.options.id}/commands/${commandId}/ack`;
    let command: { name?: string; params?: Record<string, unknown>; expiresAt?: string } = {};
    try {
      command = JSON.parse(payload.toString('utf8'));
    } catch {
      await client.publishAsync(ackTopic, JSON.stringify({ status: 'rejected', error: 'not JSON' }), { qos: 1 });
      return;
    }
    if (command.expiresAt && Date.parse(command.expiresAt) < Date.now()) return;
    // Accept at once: the cloud sends a device's next queued command only after this.
    await client.publishAsync(ackTopic, JSON.stringify({ status: 'accepted' }), { qos: 1 });
    const result =
      command.name === 'reboot'
        ? { status: 'succeeded', result: { uptimeSeconds: 0 } }
        : command.name === 'ping'
          ? { status: 'succeeded', result: { pong: true, temperature: this.temperature } }
          : { status: 'succeeded', result: { echo: command.params ?? {} } };
    await client.publishAsync(ackTopic, JSON.stringify(result), { qos: 1 });
    this.options.counters.commandsAnswered += 1;
  }

  private applyDesired(payload: Buffer): void {
    if (payload.length === 0) return;
    try {
      const desired = JSON.parse(payload.toString('utf8')) as Partial<DeviceState>;
      if (typeof desired.reportIntervalSeconds === 'number')
        this.state.reportIntervalSeconds = desired.reportIntervalSeconds;
      if (desired.led === 'on' || desired.led === 'off') this.state.led = desired.led;
      if (typeof desired.firmware === 'string') this.state.firmware = desired.firmware;
      this.options.counters.desiredApplied += 1;
      void this.report();
    } catch {
      // a desired state that is not JSON is ignored; the cloud never sends one
    }
  }

  private async report(): Promise<void> {
    await this.client?.publishAsync(`devices/${this.options.id}/state/reported`, JSON.stringify(this.state), {
      qos: 1,
    });
  }
}
