import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type DynsecMosquitto, startDynsecMosquitto } from './dynsec-mosquitto.js';

/** Builds the kiot-auth plugin when a source changed (scripts/mosquitto/kiot-auth/build.sh) and returns its path. */
export function kiotAuthPlugin(): string {
  return execFileSync('bash', ['scripts/mosquitto/kiot-auth/build.sh'], { encoding: 'utf8' }).trim();
}

/**
 * A PRIVATE Mosquitto that asks a registry (kiot-auth, first in the chain) and keeps the service accounts in
 * dynamic security (after it), as `npm start` runs it. The registry need not listen yet: the plugin asks it
 * only when a client connects.
 */
export async function startKiotAuthMosquitto(options: {
  registryUrl: string;
  /** A key with scope broker:auth that the registry accepts. */
  apiKey: string;
  ttlSeconds?: number;
}): Promise<DynsecMosquitto> {
  const keyDir = await mkdtemp(join(tmpdir(), 'kiot-auth-key-'));
  const keyFile = join(keyDir, 'broker-api-key');
  await writeFile(keyFile, `${options.apiKey}\n`, { mode: 0o600 });
  const broker = await startDynsecMosquitto({
    before: [
      `plugin ${kiotAuthPlugin()}`,
      `plugin_opt_url ${options.registryUrl}`,
      `plugin_opt_api_key_file ${keyFile}`,
      `plugin_opt_ttl ${options.ttlSeconds ?? 30}`,
    ],
  });
  return {
    ...broker,
    async close() {
      await broker.close();
      await rm(keyDir, { recursive: true, force: true });
    },
  };
}
