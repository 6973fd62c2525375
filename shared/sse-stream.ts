/**
 * A server-sent events response body (HTML Living Standard, "Server-sent events"): an async iterable of
 * text chunks that `createFunctionApp` streams with backpressure. Events are queued up to `maxQueue`; a
 * client that reads slower than events arrive loses the queue and gets one `gap` event instead (it re-reads
 * what it missed from the API), so a slow browser never grows the server's memory. A comment every
 * `heartbeatMs` keeps idle proxies from closing the connection; after `maxDurationMs` the stream ends with
 * a `reconnect` event, so a replica can drain and a long-lived browser moves to whichever replica
 * answers next (the client reconnects; `retry` says after how long).
 */
export interface SseStreamOptions {
  heartbeatMs: number;
  maxDurationMs: number;
  maxQueue: number;
  retryMs: number;
  /** Called once when the stream ends for any reason (the client left, the duration ran out, `end`). */
  onClose?: () => void;
  setTimer?: (callback: () => void, ms: number) => { unref?(): unknown };
  clearTimer?: (timer: unknown) => void;
}

export interface SseStream extends AsyncIterableIterator<string> {
  send(event: string, data: unknown): void;
  end(): void;
  /** Events queued and not yet read by the response. */
  readonly queued: number;
}

/** One event in the wire format: `event:` and one `data:` line (JSON has no raw newlines). */
export function formatEvent(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

export function createSseStream(options: SseStreamOptions): SseStream {
  const setTimer = options.setTimer ?? ((callback, ms) => setInterval(callback, ms));
  const clearTimer = options.clearTimer ?? ((timer) => clearInterval(timer as NodeJS.Timeout));
  const queue: string[] = [`retry: ${options.retryMs}\n: connected\n\n`];
  let ended = false;
  let waiting: ((result: IteratorResult<string>) => void) | undefined;

  const wake = () => {
    if (!waiting) return;
    const resolve = waiting;
    if (queue.length > 0) {
      waiting = undefined;
      resolve({ value: queue.shift()!, done: false });
    } else if (ended) {
      waiting = undefined;
      resolve({ value: undefined, done: true });
    }
  };
  const enqueue = (chunk: string) => {
    if (ended) return;
    queue.push(chunk);
    wake();
  };
  const heartbeat = setTimer(() => enqueue(': ping\n\n'), options.heartbeatMs);
  heartbeat.unref?.();
  let expiry: unknown;
  const finish = () => {
    if (ended) return;
    ended = true;
    clearTimer(heartbeat);
    clearTimer(expiry);
    options.onClose?.();
    wake();
  };
  const expire = setTimer(() => {
    enqueue(formatEvent('reconnect', { afterMs: options.retryMs }));
    finish();
  }, options.maxDurationMs);
  expire.unref?.();
  expiry = expire;

  const stream: SseStream = {
    get queued() {
      return queue.length;
    },
    send(event, data) {
      if (ended) return;
      if (queue.length >= options.maxQueue) {
        queue.length = 0;
        queue.push(formatEvent('gap', { reason: 'the client reads slower than events arrive' }));
        return;
      }
      enqueue(formatEvent(event, data));
    },
    end: finish,
    next() {
      if (queue.length > 0) return Promise.resolve({ value: queue.shift()!, done: false });
      if (ended) return Promise.resolve({ value: undefined, done: true });
      return new Promise((resolve) => {
        waiting = resolve;
      });
    },
    // The response calls this when the client goes away: answer at once, even while a `next` waits.
    return() {
      queue.length = 0;
      finish();
      return Promise.resolve({ value: undefined, done: true });
    },
    [Symbol.asyncIterator]() {
      return stream;
    },
  };
  return stream;
}
