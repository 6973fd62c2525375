import type { Dispatcher } from 'undici';
import { describe, expect, it, vi } from 'vitest';
import { warmDelivery } from '../../../scripts/router/warm-up.js';
import type { EventDispatcher } from '../../../shared/event-transport.js';
import { createLogger } from '../../../shared/logger.js';

/** A dispatcher that records each request and answers it, or refuses the connection. */
function fakeDispatcher(up: boolean) {
  const asked: string[] = [];
  const dump = vi.fn(async () => undefined);
  const dispatcher: EventDispatcher = {
    async request(options: Dispatcher.RequestOptions) {
      asked.push(`${options.method} ${String(options.origin)}${options.path}`);
      if (!up) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
      return { statusCode: 200, headers: {}, body: { dump } } as unknown as Dispatcher.ResponseData;
    },
    close: async () => undefined,
  };
  return { dispatcher, asked, dump };
}

describe('router warm-up (the delivery path readied at start, not on the first event)', () => {
  it('asks the router itself for /healthz through the delivery dispatcher and reads the answer', async () => {
    const { dispatcher, asked, dump } = fakeDispatcher(true);
    await warmDelivery({ dispatcher, self: 'http://127.0.0.1:8080', logger: createLogger('test', 'silent') });
    expect(asked).toEqual(['GET http://127.0.0.1:8080/healthz']);
    // Read to the end, so the connection goes back to the pool.
    expect(dump).toHaveBeenCalledTimes(1);
  });

  it('never fails the start: a failed request is a warning, and the first deliveries pay as before', async () => {
    const { dispatcher } = fakeDispatcher(false);
    const logger = createLogger('test', 'silent');
    const warn = vi.spyOn(logger, 'warn');
    await expect(warmDelivery({ dispatcher, self: 'http://127.0.0.1:8080', logger })).resolves.toBeUndefined();
    expect(warn).toHaveBeenCalledTimes(1);
  });
});
