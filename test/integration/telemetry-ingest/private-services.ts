import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, waitForPort } from '../../support/ports.js';

export { freePort };

/** A service this test owns: it may stop and start it again on the same port with the same data. */
export interface PrivateService {
  url: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

function privateService(port: number, url: string, launch: () => ChildProcess): PrivateService {
  let child: ChildProcess | undefined;
  return {
    url,
    async start() {
      child = launch();
      await waitForPort(port, child);
    },
    async stop() {
      const current = child;
      child = undefined;
      if (!current || current.exitCode !== null) return;
      const exited = new Promise<void>((resolve) => current.once('exit', () => resolve()));
      // SIGTERM: mongo-java-server's shutdown hook closes the H2 store, as a clean stop of mongod flushes.
      current.kill('SIGTERM');
      await exited;
    },
  };
}

/**
 * A private MongoDB whose data survives a stop: `mongod` when KIOT_MONGOD names the binary (so the
 * test also runs against the real server), else mongo-java-server with an H2 file.
 */
export async function privateMongo(dataDir: string): Promise<PrivateService> {
  const port = await freePort();
  const mongod = process.env.KIOT_MONGOD;
  return privateService(port, `mongodb://127.0.0.1:${port}`, () =>
    mongod
      ? spawn(mongod, ['--bind_ip', '127.0.0.1', '--port', String(port), '--dbpath', dataDir], { stdio: 'ignore' })
      : spawn(
          'java',
          [
            '-Xmx512m',
            '-cp',
            readFileSync('.kiot/mongo-classpath.txt', 'utf8').trim(),
            'scripts/mongo/KiotMongoServer.java',
            '127.0.0.1',
            String(port),
            join(dataDir, 'mongo.h2'),
          ],
          { stdio: 'ignore' },
        ),
  );
}

/** A private Redis without persistence: a restart loses every key, as a failover to an empty replica does. */
export async function privateRedis(): Promise<PrivateService> {
  const port = await freePort();
  return privateService(port, `redis://127.0.0.1:${port}`, () =>
    spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no'], {
      stdio: 'ignore',
    }),
  );
}
