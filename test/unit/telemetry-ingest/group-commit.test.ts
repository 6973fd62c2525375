import { describe, expect, it } from 'vitest';
import { createGroupCommit } from '../../../functions/telemetry-ingest/group-commit.js';

const allNew = () => ({ failures: new Map(), existing: [] });

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('group commit', () => {
  it('coalesces concurrent callers into one write and resolves each after it', async () => {
    const writes: number[][] = [];
    const commit = createGroupCommit<number>({
      maxWaitMs: 5,
      maxDocs: 100,
      maxInFlight: 1,
      write: async (docs) => {
        writes.push(docs);
        return allNew();
      },
    });
    await Promise.all([commit.add([1, 2]), commit.add([3]), commit.add([4, 5, 6])]);
    expect(writes).toEqual([[1, 2, 3, 4, 5, 6]]);
  });

  it('writes at once when maxDocs are waiting, never splitting one caller', async () => {
    const writes: number[][] = [];
    const commit = createGroupCommit<number>({
      maxWaitMs: 1_000,
      maxDocs: 3,
      maxInFlight: 4,
      write: async (docs) => {
        writes.push(docs);
        return allNew();
      },
    });
    await Promise.all([commit.add([1, 2]), commit.add([3, 4]), commit.add([5, 6])]);
    expect(writes.flat().sort()).toEqual([1, 2, 3, 4, 5, 6]);
    for (const batch of writes)
      expect([
        [1, 2],
        [3, 4],
        [5, 6],
        [1, 2, 3, 4],
        [3, 4, 5, 6],
      ]).toContainEqual(batch);
  });

  it('fails only the callers whose documents failed, and every caller when the write throws', async () => {
    const commit = createGroupCommit<string>({
      maxWaitMs: 1,
      maxDocs: 100,
      maxInFlight: 1,
      write: async (docs) => ({
        failures: new Map(
          docs.flatMap((doc, index) => (doc === 'bad' ? [[index, new Error('bad doc')] as const] : [])),
        ),
        existing: [],
      }),
    });
    const results = await Promise.allSettled([commit.add(['a']), commit.add(['b', 'bad']), commit.add(['c'])]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    const down = createGroupCommit<string>({
      maxWaitMs: 1,
      maxDocs: 100,
      maxInFlight: 1,
      write: async () => Promise.reject(new Error('down')),
    });
    const failed = await Promise.allSettled([down.add(['a']), down.add(['b'])]);
    expect(failed.map((r) => r.status)).toEqual(['rejected', 'rejected']);
  });

  it('keeps at most maxInFlight writes and batches what queues behind them', async () => {
    const gates = [deferred(), deferred(), deferred()];
    const writes: number[][] = [];
    let running = 0;
    let maxRunning = 0;
    const commit = createGroupCommit<number>({
      maxWaitMs: 0,
      maxDocs: 100,
      maxInFlight: 1,
      async write(docs) {
        running += 1;
        maxRunning = Math.max(maxRunning, running);
        writes.push(docs);
        await gates[writes.length - 1]!.promise;
        running -= 1;
        return allNew();
      },
    });
    const first = commit.add([1]);
    const later = [commit.add([2]), commit.add([3]), commit.add([4])];
    gates[0]!.resolve();
    await first;
    gates[1]!.resolve();
    await Promise.all(later);
    await commit.drain();
    expect(maxRunning).toBe(1);
    expect(writes).toEqual([[1], [2, 3, 4]]);
  });

  it("tells each caller which of its own documents were stored already (the store's duplicate keys)", async () => {
    const commit = createGroupCommit<string>({
      maxWaitMs: 5,
      maxDocs: 100,
      maxInFlight: 1,
      // The store answers duplicates in any order: positions 5, 0, 3 and 4 of the merged batch were stored before.
      write: async (docs) => {
        expect(docs).toEqual(['old', 'a', 'b', 'old', 'old', 'old', 'c']);
        return { failures: new Map(), existing: [5, 0, 3, 4] };
      },
    });
    const answers = await Promise.all([
      commit.add(['old', 'a']),
      commit.add(['b']),
      commit.add(['old', 'old', 'old']),
      commit.add(['c']),
    ]);
    expect(answers.map((existing) => [...existing].sort())).toEqual([[0], [], [0, 1, 2], []]);
    expect(await commit.add([])).toEqual(new Set());
  });
});
