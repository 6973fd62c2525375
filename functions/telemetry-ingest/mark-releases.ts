// State reports' in-progress marks (admission.ts): what a failed attempt could not release while Redis was away.

/** An in-progress mark this process holds: its key, its attempt's token, and its device's hash (its bucket). */
export interface Mark {
  deviceId: string;
  key: string;
  token: string;
  bucket: string;
}

/** Releases kept until Redis answers again; bounded (past that, the marks expire on their own). */
export function retryInBackground(release: (marks: readonly Mark[]) => Promise<void>, everyMs = 250, max = 10_000) {
  const pending = new Map<string, Mark>();
  let timer: NodeJS.Timeout | undefined;
  let running = false;
  async function flush() {
    if (running) return;
    running = true;
    try {
      const marks = [...pending.values()];
      await release(marks);
      for (const mark of marks) pending.delete(mark.key);
    } catch {
      // Still unreachable: the next tick tries again.
    } finally {
      running = false;
      if (pending.size === 0 && timer) {
        clearInterval(timer);
        timer = undefined;
      }
    }
  }
  return {
    add(marks: readonly Mark[]) {
      for (const mark of marks) if (pending.size < max) pending.set(mark.key, mark);
      timer ??= setInterval(() => void flush(), everyMs).unref();
    },
  };
}
