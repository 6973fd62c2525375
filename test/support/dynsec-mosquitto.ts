import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, waitForPort } from './ports.js';

/**
 * A PRIVATE Mosquitto with the dynamic-security plugin, on a free loopback port in a temp dir, for tests
 * that create broker clients and roles or stop the broker. Never the shared test broker.
 */
export const DYNSEC_PLUGIN =
  process.env.MOSQUITTO_DYNSEC_PLUGIN ?? '/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so';
const MOSQUITTO =
  process.env.MOSQUITTO_BIN ?? (existsSync('/usr/sbin/mosquitto') ? '/usr/sbin/mosquitto' : 'mosquitto');

export interface DynsecMosquitto {
  url: string;
  port: number;
  admin: { username: string; password: string };
  dir: string;
  /** Stops the broker (e.g. to test 503s); `start()` brings it back on the same port with the same config. */
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

export async function startDynsecMosquitto(
  options: {
    adminPassword?: string /** Config lines before the dynsec plugin's (a plugin asked first). */;
    before?: string[];
  } = {},
): Promise<DynsecMosquitto> {
  const dir = await mkdtemp(join(tmpdir(), 'kiot-dynsec-'));
  const port = await freePort();
  const admin = { username: 'admin', password: options.adminPassword ?? `pw-${Math.random().toString(36).slice(2)}` };
  const configFile = join(dir, 'dynamic-security.json');
  await promisify(execFile)('mosquitto_ctrl', ['dynsec', 'init', configFile, admin.username, admin.password]);
  const conf = join(dir, 'mosquitto.conf');
  await writeFile(
    conf,
    [
      'per_listener_settings false',
      // Keep the invoking user: as root Mosquitto would switch to "mosquitto", which cannot read the temp dir.
      `user ${userInfo().username}`,
      `listener ${port} 127.0.0.1`,
      'allow_anonymous false',
      'persistence false',
      ...(options.before ?? []),
      `plugin ${DYNSEC_PLUGIN}`,
      `plugin_opt_config_file ${configFile}`,
      '',
    ].join('\n'),
  );

  let child: ChildProcess | undefined;
  let output = '';
  const start = async () => {
    output = '';
    child = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    await waitForPort(port, child, { timeoutMs: 10_000, describe: () => output });
  };
  const stop = async () => {
    const current = child;
    child = undefined;
    if (!current || current.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      current.once('exit', () => resolve());
      current.kill('SIGTERM');
    });
  };
  await start();
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    admin,
    dir,
    start,
    stop,
    async close() {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
