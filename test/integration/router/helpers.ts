import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import type { DeadLetterRecord } from '../../../scripts/router/dead-letter-file.js';
import { type RunningRouter, routerConfigSchema, startRouter } from '../../../scripts/router/index.js';
import { CloudEvent, toBinaryMessage, toStructuredMessage } from '../../../shared/cloudevents.js';
import { loadConfig } from '../../../shared/config.js';
import { createLogger } from '../../../shared/logger.js';
import { uniqueName } from '../../support/services.js';
import { type SinkServer, startSinkServer } from '../../support/sink-server.js';

export const BROKER = `apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: { name: default, namespace: kiot }
`;

export interface TestRouter extends RunningRouter {
  ingress: string;
  deadLetterFile: string;
  post(event: CloudEvent<unknown>, mode?: 'binary' | 'structured', path?: string): Promise<Response>;
  deadLetters(): Promise<DeadLetterRecord[]>;
  stop(): Promise<void>;
}

/** A router in-process on port 0, reading `manifests` (file name → YAML) from a fresh temp dir. */
export async function startTestRouter(options: {
  manifests?: Record<string, string>;
  dir?: string;
  services?: string;
}): Promise<TestRouter> {
  const root = await mkdtemp(join(tmpdir(), 'kiot-router-'));
  const dir = options.dir ?? join(root, 'knative');
  for (const [name, text] of Object.entries(options.manifests ?? {})) {
    await mkdir(join(dir, name, '..'), { recursive: true });
    await writeFile(join(dir, name), text);
  }
  const deadLetterFile = join(root, 'dead-letters.jsonl');
  const config = loadConfig(routerConfigSchema, {
    PORT: '0',
    KNATIVE_DIR: dir,
    ROUTER_SERVICES: options.services ?? '',
    ROUTER_DEAD_LETTER_FILE: deadLetterFile,
  });
  const router = await startRouter(config, { logger: createLogger('router-test', 'silent') });
  const ingress = `${router.url}/kiot/default`;
  return {
    ...router,
    ingress,
    deadLetterFile,
    post(event, mode = 'binary', path = '/kiot/default') {
      const message = mode === 'binary' ? toBinaryMessage(event) : toStructuredMessage(event);
      return fetch(`${router.url}${path}`, { method: 'POST', headers: message.headers, body: message.body });
    },
    async deadLetters() {
      const response = await fetch(`${router.url}/dead-letters`);
      return ((await response.json()) as { records: DeadLetterRecord[] }).records;
    },
    async stop() {
      await router.close({ drainTimeoutMs: 0 });
      await rm(root, { recursive: true, force: true });
    },
  };
}

export function testEvent(type: string, extra: Record<string, unknown> = {}): CloudEvent<unknown> {
  return new CloudEvent<unknown>({
    id: uniqueName('ev'),
    source: '/kiot/test',
    type,
    subject: 'dev-1',
    data: { n: 1 },
    ...extra,
  });
}

/** A Trigger manifest; `spec` is YAML indented by two spaces. */
export function trigger(name: string, spec: string): string {
  return `apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata: { name: ${name}, namespace: kiot }\nspec:\n  broker: default\n${spec}`;
}

/** Polls `check` (not the clock) until it holds. */
export async function waitUntil(check: () => Promise<boolean> | boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Per-test fixtures that tear themselves down after each test (in reverse order): recording sink servers
 * and in-process routers. Call inside a `describe`.
 */
export function routerFixtures() {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });
  return {
    async sink(): Promise<SinkServer> {
      const server = await startSinkServer();
      cleanup.push(() => server.close());
      return server;
    },
    async router(options: Parameters<typeof startTestRouter>[0]): Promise<TestRouter> {
      const started = await startTestRouter(options);
      cleanup.push(() => started.stop());
      return started;
    },
  };
}
