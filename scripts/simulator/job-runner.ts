import { createHash } from 'node:crypto';
import type { MqttClient } from 'mqtt';

/**
 * How a simulated device executes jobs (functions/jobs/device-topics.ts): on `notify-next` it asks
 * `start-next`; an OTA job downloads the artifact with the device's own credential (in two Range requests,
 * as a device resuming after a dropped connection would), verifies its SHA-256, reports progress, then
 * "installs" for `installMs` and fails with probability `failureRate`. Other jobs just succeed.
 */
export interface JobCounters {
  jobsSucceeded: number;
  jobsFailed: number;
}

export interface JobRunnerOptions {
  id: string;
  secret?: string;
  installMs: number;
  failureRate: number;
  counters: JobCounters;
  random: () => number;
  /** Called with the new firmware version after a successful OTA install. */
  onFirmware(version: string): void;
}

interface Execution {
  jobId: string;
  status: string;
  versionNumber: number;
  executionNumber: number;
  jobDocument?: Record<string, unknown>;
}

export class JobRunner {
  private running?: string;
  private readonly finished = new Set<string>();

  constructor(private readonly options: JobRunnerOptions) {}

  /** The topics to subscribe to (the answers to start-next and the notifications). */
  topics(): string[] {
    const base = `devices/${this.options.id}/jobs`;
    return [`${base}/notify-next`, `${base}/start-next/accepted`];
  }

  /** Asks for work after (re)connecting: anything pending arrives on start-next/accepted. */
  async connected(client: MqttClient): Promise<void> {
    await this.startNext(client);
  }

  /** Whether the message was for the job runner (and handled). */
  onMessage(client: MqttClient, topic: string, payload: Buffer): boolean {
    const base = `devices/${this.options.id}/jobs/`;
    if (!topic.startsWith(base)) return false;
    const rest = topic.slice(base.length);
    let body: { execution?: Execution };
    try {
      body = JSON.parse(payload.toString('utf8'));
    } catch {
      return true;
    }
    if (rest === 'notify-next' && body.execution && !this.running) void this.startNext(client);
    if (rest === 'start-next/accepted' && body.execution) void this.run(client, body.execution);
    return true;
  }

  private async startNext(client: MqttClient): Promise<void> {
    await client
      .publishAsync(`devices/${this.options.id}/jobs/start-next`, JSON.stringify({ clientToken: 'sim' }), { qos: 1 })
      .catch(() => undefined);
  }

  private async run(client: MqttClient, execution: Execution): Promise<void> {
    const key = `${execution.jobId}#${execution.executionNumber}`;
    if (this.running || this.finished.has(key)) return;
    this.running = key;
    let version = execution.versionNumber;
    const update = async (status: string, statusDetails: Record<string, string>) => {
      await client.publishAsync(
        `devices/${this.options.id}/jobs/${execution.jobId}/update`,
        JSON.stringify({ status, statusDetails, expectedVersion: version }),
        { qos: 1 },
      );
      version += 1;
    };
    try {
      const document = execution.jobDocument ?? {};
      if (document.operation === 'ota') {
        await update('IN_PROGRESS', { step: 'downloading' });
        const failure = await this.download(String(document.url), String(document.sha256), Number(document.size));
        if (failure) {
          await update('FAILED', { reason: failure });
          this.options.counters.jobsFailed += 1;
          return;
        }
        await update('IN_PROGRESS', { step: 'installing', progress: '50' });
      }
      await new Promise((resolve) => setTimeout(resolve, this.options.installMs));
      if (this.options.random() < this.options.failureRate) {
        await update('FAILED', { reason: 'install_failed' });
        this.options.counters.jobsFailed += 1;
      } else {
        await update('SUCCEEDED', { step: 'done' });
        if (document.operation === 'ota') this.options.onFirmware(String(document.version));
        this.options.counters.jobsSucceeded += 1;
      }
    } catch {
      // The broker or the download went away: the execution times out or is picked up after a reconnect.
    } finally {
      this.finished.add(key);
      if (this.finished.size > 1_000) this.finished.delete(this.finished.values().next().value!);
      this.running = undefined;
    }
  }

  /** Downloads in two halves (the second a `Range` resume); the failure reason, or undefined when the SHA-256 matches. */
  private async download(url: string, sha256: string, size: number): Promise<string | undefined> {
    const authorization = `Basic ${Buffer.from(`${this.options.id}:${this.options.secret ?? ''}`).toString('base64')}`;
    const part = async (range: string) => {
      const response = await fetch(url, { headers: { authorization, range } });
      if (response.status !== 206) throw new Error(`download answered ${response.status}`);
      return Buffer.from(await response.arrayBuffer());
    };
    try {
      const half = Math.floor(size / 2);
      const head = half > 0 ? await part(`bytes=0-${half - 1}`) : Buffer.alloc(0);
      const tail = head.length < size ? await part(`bytes=${head.length}-`) : Buffer.alloc(0);
      const digest = createHash('sha256').update(head).update(tail).digest('hex');
      return digest === sha256 ? undefined : 'hash_mismatch';
    } catch {
      return 'download_failed';
    }
  }
}
