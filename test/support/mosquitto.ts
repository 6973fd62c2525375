import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { freePort, waitForPort } from './ports.js';

export { freePort };

/** A private Mosquitto for tests that stop or restart the broker (CONTRIBUTING: never the shared one). */
export interface PrivateMosquitto {
  url: string;
  port: number;
  dir: string;
  running(): boolean;
  /** The process id while it runs. */
  pid(): number | undefined;
  /** SIGTERM and wait for exit: Mosquitto writes its persistence file on the way out. */
  stop(): Promise<void>;
  /** Starts it again on the same port with the same data. */
  start(): Promise<void>;
  restart(): Promise<void>;
  /** Stops it and removes its data. */
  dispose(): Promise<void>;
}

export interface MosquittoOptions {
  persistence?: boolean;
  /** Extra lines for mosquitto.conf. */
  extraConfig?: string[];
  binary?: string;
}

export async function startMosquitto(options: MosquittoOptions = {}): Promise<PrivateMosquitto> {
  const binary = options.binary ?? process.env.MOSQUITTO_BIN ?? '/usr/sbin/mosquitto';
  const dir = mkdtempSync(join(tmpdir(), 'kiot-mosquitto-'));
  const port = await freePort();
  const config = [
    'per_listener_settings false',
    // Mosquitto started as root drops to the user "mosquitto", which could not write the temp dir.
    `user ${userInfo().username}`,
    `persistence ${options.persistence === false ? 'false' : 'true'}`,
    `persistence_location ${dir}/`,
    'autosave_interval 1',
    'max_queued_messages 200000',
    'max_inflight_messages 100',
    // As scripts/services.sh: without it a PUBLISH to a session whose PUBACKs wait (the bridge's batches) sits in
    // Nagle's buffer until the peer's delayed ACK (~40 ms a hop on loopback).
    'set_tcp_nodelay true',
    `listener ${port} 127.0.0.1`,
    'allow_anonymous true',
    ...(options.extraConfig ?? []),
  ];
  writeFileSync(join(dir, 'mosquitto.conf'), `${config.join('\n')}\n`);
  let child: ChildProcess | undefined;
  let output = '';

  const broker: PrivateMosquitto = {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    dir,
    running: () => child !== undefined && child.exitCode === null,
    pid: () => (child && child.exitCode === null ? child.pid : undefined),
    async start() {
      if (broker.running()) return;
      const started = spawn(binary, ['-c', join(dir, 'mosquitto.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
      child = started;
      started.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
      started.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
      await waitForPort(port, started, { timeoutMs: 10_000, describe: () => output.slice(-2000) });
    },
    async stop() {
      const current = child;
      if (!current || current.exitCode !== null) return;
      const exited = new Promise<void>((resolve) => current.once('exit', () => resolve()));
      current.kill('SIGTERM');
      await exited;
    },
    async restart() {
      await broker.stop();
      await broker.start();
    },
    async dispose() {
      await broker.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await broker.start();
  return broker;
}
