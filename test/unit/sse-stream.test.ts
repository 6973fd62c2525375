import { describe, expect, it } from 'vitest';
import { createSseStream, formatEvent } from '../../shared/sse-stream.js';

/** Timers the test fires by hand: no clock involved. */
function manualTimers() {
  const timers = new Map<number, { callback: () => void; ms: number }>();
  let next = 0;
  return {
    setTimer: (callback: () => void, ms: number) => {
      const id = next++;
      timers.set(id, { callback, ms });
      return id as unknown as { unref?(): unknown };
    },
    clearTimer: (timer: unknown) => void timers.delete(timer as number),
    fire: (ms: number) => {
      for (const timer of [...timers.values()]) if (timer.ms === ms) timer.callback();
    },
    get count() {
      return timers.size;
    },
  };
}

const options = (timers: ReturnType<typeof manualTimers>, extra: { onClose?: () => void; maxQueue?: number } = {}) => ({
  heartbeatMs: 15,
  maxDurationMs: 300,
  maxQueue: extra.maxQueue ?? 100,
  retryMs: 2_000,
  setTimer: timers.setTimer,
  clearTimer: timers.clearTimer,
  ...(extra.onClose ? { onClose: extra.onClose } : {}),
});

describe('server-sent events stream', () => {
  it('starts with the retry interval, then sends events in order and heartbeats as comments', async () => {
    const timers = manualTimers();
    const stream = createSseStream(options(timers));
    expect((await stream.next()).value).toBe('retry: 2000\n: connected\n\n');
    const waiting = stream.next();
    stream.send('samples', [{ ts: 't', metrics: { a: 1 } }]);
    expect((await waiting).value).toBe('event: samples\ndata: [{"ts":"t","metrics":{"a":1}}]\n\n');
    timers.fire(15);
    expect((await stream.next()).value).toBe(': ping\n\n');
  });

  it('replaces a backlog the client cannot read with one gap event', async () => {
    const timers = manualTimers();
    const stream = createSseStream(options(timers, { maxQueue: 3 }));
    await stream.next();
    for (let i = 0; i < 5; i += 1) stream.send('samples', i);
    const chunks: string[] = [];
    while (stream.queued > 0) chunks.push((await stream.next()).value as string);
    expect(chunks[0]).toContain('event: gap');
    expect(chunks).toEqual([chunks[0], formatEvent('samples', 4)]);
  });

  it('ends after its maximum duration with a reconnect event, and tells its owner once', async () => {
    const timers = manualTimers();
    let closed = 0;
    const stream = createSseStream(options(timers, { onClose: () => (closed += 1) }));
    await stream.next();
    timers.fire(300);
    expect((await stream.next()).value).toBe(formatEvent('reconnect', { afterMs: 2_000 }));
    expect((await stream.next()).done).toBe(true);
    stream.send('samples', 1);
    expect((await stream.next()).done).toBe(true);
    expect(closed).toBe(1);
    expect(timers.count).toBe(0);
  });

  it('answers return() at once while a read waits, and stops its timers', async () => {
    const timers = manualTimers();
    let closed = 0;
    const stream = createSseStream(options(timers, { onClose: () => (closed += 1) }));
    await stream.next();
    const waiting = stream.next();
    expect((await stream.return!()).done).toBe(true);
    expect((await waiting).done).toBe(true);
    expect(closed).toBe(1);
    expect(timers.count).toBe(0);
  });
});
