/**
 * Group commit: concurrent callers' documents are collected for at most `maxWaitMs` or until
 * `maxDocs` are waiting, then written with one call; each caller resolves only after the store has
 * acknowledged its own documents (or rejects with the error of the first that failed), with the positions
 * of those it found stored already (a duplicate key: the insert is the dedup). At most
 * `maxInFlight` writes run at once; while they do, the next batch keeps growing, so under load the
 * batches get bigger instead of the queue of writes getting longer.
 */
export interface GroupCommitOptions<T> {
  maxWaitMs: number;
  maxDocs: number;
  maxInFlight: number;
  /** Writes a batch; resolves with what failed and what was stored already, by position in `docs`. */
  write(docs: T[]): Promise<WriteOutcome>;
  /** Observes every batch (size, milliseconds), e.g. for a histogram. */
  onBatch?(size: number, ms: number): void;
}

/** A batch's write: failures (an empty map: all durable) and the documents that existed already, by position. */
export interface WriteOutcome {
  failures: Map<number, unknown>;
  /** Positions of documents the store already held (a duplicate key), in any order: durable, not written again. */
  existing: readonly number[];
}

/** Positions (in one caller's `docs`) of the documents that were stored already; usually none. */
export type Existing = ReadonlySet<number>;

const NONE: Existing = new Set();

export interface GroupCommit<T> {
  /** Resolves when all of `docs` are durable, with the positions of those that were stored before. */
  add(docs: T[]): Promise<Existing>;
  /** Writes whatever is waiting and resolves when every write in flight has finished. */
  drain(): Promise<void>;
}

interface Entry<T> {
  docs: T[];
  resolve(existing: Existing): void;
  reject(error: unknown): void;
}

export function createGroupCommit<T>(options: GroupCommitOptions<T>): GroupCommit<T> {
  const waiting: Entry<T>[] = [];
  let waitingDocs = 0;
  let timer: NodeJS.Timeout | undefined;
  let due = false;
  let inFlight = 0;
  const idle = new Set<() => void>();

  function schedule() {
    if (waitingDocs >= options.maxDocs || options.maxWaitMs === 0) due = true;
    if (due) return pump();
    timer ??= setTimeout(() => {
      timer = undefined;
      due = true;
      pump();
    }, options.maxWaitMs);
  }

  function pump() {
    while (due && waiting.length > 0 && inFlight < options.maxInFlight) {
      if (timer) clearTimeout(timer);
      timer = undefined;
      const batch = takeBatch();
      due = waiting.length > 0 && (waitingDocs >= options.maxDocs || options.maxWaitMs === 0);
      if (waiting.length > 0 && !due) schedule();
      void run(batch);
    }
  }

  function takeBatch(): Entry<T>[] {
    const batch: Entry<T>[] = [];
    let size = 0;
    // Never split one caller's documents: a batch may exceed maxDocs by one caller's share.
    while (waiting.length > 0 && (size === 0 || size + waiting[0]!.docs.length <= options.maxDocs)) {
      const entry = waiting.shift()!;
      size += entry.docs.length;
      waitingDocs -= entry.docs.length;
      batch.push(entry);
    }
    return batch;
  }

  async function run(batch: Entry<T>[]) {
    inFlight += 1;
    const docs = batch.flatMap((entry) => entry.docs);
    const started = performance.now();
    try {
      const { failures, existing } = await options.write(docs);
      const stored = existing.length === 0 ? [] : [...existing].sort((a, b) => a - b);
      let offset = 0;
      let next = 0;
      for (const entry of batch) {
        const end = offset + entry.docs.length;
        const failure = firstFailure(failures, offset, entry.docs.length);
        let mine: Set<number> | undefined;
        for (; next < stored.length && stored[next]! < end; next += 1) {
          mine ??= new Set();
          mine.add(stored[next]! - offset);
        }
        offset = end;
        if (failure === undefined) entry.resolve(mine ?? NONE);
        else entry.reject(failure.error);
      }
    } catch (error) {
      for (const entry of batch) entry.reject(error);
    } finally {
      options.onBatch?.(docs.length, performance.now() - started);
      inFlight -= 1;
      // What queued up behind a full pipeline is due at once: it has waited at least this long.
      if (waiting.length > 0) due = true;
      pump();
      if (inFlight === 0 && waiting.length === 0) for (const done of [...idle]) done();
    }
  }

  return {
    add(docs) {
      if (docs.length === 0) return Promise.resolve(NONE);
      return new Promise<Existing>((resolve, reject) => {
        waiting.push({ docs, resolve, reject });
        waitingDocs += docs.length;
        schedule();
      });
    },
    drain() {
      due = true;
      pump();
      if (inFlight === 0 && waiting.length === 0) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const done = () => {
          idle.delete(done);
          resolve();
        };
        idle.add(done);
      });
    },
  };
}

function firstFailure(failures: Map<number, unknown>, offset: number, count: number): { error: unknown } | undefined {
  if (failures.size === 0) return undefined;
  for (let index = offset; index < offset + count; index += 1)
    if (failures.has(index)) return { error: failures.get(index) };
  return undefined;
}
