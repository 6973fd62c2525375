import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createFunctionApp } from '../../shared/function-app.js';
import { createLogger } from '../../shared/logger.js';
import { createFunctionServer } from '../../shared/serve.js';
import { uniqueName } from '../support/services.js';

// What a cold start relies on (docs/performance.md, "Cold start"): the stores start connecting before the first
// request, and /healthz waits for the slowest store, not for their sum.
describe('a function app at start', () => {
  const logger = createLogger('test-start', 'silent');

  it('connect() starts every health check at once and waits for none', () => {
    const started: string[] = [];
    const never = new Promise<void>(() => undefined);
    const handler = createFunctionApp({
      service: 'test-start',
      logger,
      health: {
        mongodb: () => {
          started.push('mongodb');
          return never;
        },
        redis: () => {
          started.push('redis');
          return Promise.reject(new Error('not yet'));
        },
      },
    });
    handler.connect?.();
    expect(started).toEqual(['mongodb', 'redis']);
  });

  it('/healthz runs the checks together: one that waits for another to start still answers', async () => {
    let secondStarted!: () => void;
    const second = new Promise<void>((resolve) => (secondStarted = resolve));
    const handler = createFunctionApp({
      service: 'test-start',
      logger,
      health: {
        // Run one after the other, this check would wait forever for the next one.
        first: () => second,
        second: async () => secondStarted(),
        failing: async () => {
          throw new Error('down');
        },
      },
    });
    const server = createFunctionServer(uniqueName('start'), handler);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const response = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/healthz`);
      expect(response.status).toBe(503);
      expect(await response.json()).toEqual({
        status: 'unavailable',
        service: 'test-start',
        checks: { first: 'ok', second: 'ok', failing: 'down' },
      });
    } finally {
      server.close();
    }
  });

  it('/healthz joins a check still in flight from connect(), and runs a fresh one once it has settled', async () => {
    const pings: (() => void)[] = [];
    const handler = createFunctionApp({
      service: 'test-start',
      logger,
      health: { mongodb: () => new Promise<void>((resolve) => pings.push(resolve)) },
    });
    const server = createFunctionServer(uniqueName('start'), handler);
    handler.connect?.();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/healthz`;
    try {
      const first = fetch(url);
      // The probe is in the handler, waiting on connect()'s ping: answered when that ping is, with no ping of its own.
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(pings).toHaveLength(1);
      pings[0]!();
      expect((await first).status).toBe(200);
      // Settled: the next probe asks the store again.
      const second = fetch(url);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(pings).toHaveLength(2);
      pings[1]!();
      expect((await second).status).toBe(200);
    } finally {
      server.close();
    }
  });
});
