import { type ChildProcess, spawn } from 'node:child_process';
import { appendFile, mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openJournal } from '../../../scripts/router/journal.js';
import { decodeSegment, encodeRecord } from '../../../scripts/router/journal-records.js';
import { createLogger } from '../../../shared/logger.js';

const logger = createLogger('journal-test', 'silent');
const event = (id: string) => ({ specversion: '1.0', id, source: '/test', type: 'io.kiot.test', data: { id } });

describe('router journal', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });
  const tempDir = async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiot-journal-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    return dir;
  };
  const segments = async (dir: string) => (await readdir(dir)).filter((name) => name.startsWith('segment-')).sort();

  it('encodes one checksummed line per record; a torn or damaged line is skipped, not misread', () => {
    const accepted = encodeRecord({ a: 1, b: 'kiot/default', t: 254, k: ['kiot/t1'], e: event('e1') });
    const done = encodeRecord({ d: 1, k: 'kiot/t1' });
    expect(accepted).toMatch(/^[0-9a-f]{8} \{.*\}\n$/);
    expect(decodeSegment(accepted + done)).toEqual({
      records: [
        { a: 1, b: 'kiot/default', t: 254, k: ['kiot/t1'], e: event('e1') },
        { d: 1, k: 'kiot/t1' },
      ],
      skipped: 0,
    });
    // A crash mid-write leaves half a line; a power cut can leave zeros; a flipped byte fails the checksum.
    const torn = accepted + done.slice(0, 12);
    expect(decodeSegment(torn)).toMatchObject({ records: [{ a: 1 }], skipped: 1 });
    expect(decodeSegment(`${accepted}\0\0\0\0\0\0\0\0`)).toMatchObject({ records: [{ a: 1 }], skipped: 1 });
    expect(decodeSegment(accepted.replace('e1', 'e2'))).toEqual({ records: [], skipped: 1 });
  });

  it('gives back, after a restart, exactly the deliveries that had not ended, and numbers on', async () => {
    const dir = await tempDir();
    const first = await openJournal({ dir, segmentBytes: 1 << 20, logger });
    expect(first.unfinished).toEqual([]);
    const seqs: number[] = [];
    for (const id of ['e1', 'e2', 'e3']) {
      seqs.push(
        await first.accept({ broker: 'kiot/default', ttl: 254, triggers: ['kiot/a', 'kiot/b'], event: event(id) }),
      );
    }
    first.done(seqs[0]!, 'kiot/a');
    first.done(seqs[0]!, 'kiot/b');
    first.done(seqs[1]!, 'kiot/b');
    // A done for a Trigger the event never had, or twice, changes nothing.
    first.done(seqs[1]!, 'kiot/b');
    first.done(seqs[2]!, 'kiot/zzz');
    expect(first.pending()).toBe(2);
    await first.close();

    const second = await openJournal({ dir, segmentBytes: 1 << 20, logger });
    expect(second.unfinished).toEqual([
      { seq: seqs[1], broker: 'kiot/default', ttl: 254, event: event('e2'), triggers: ['kiot/a'] },
      { seq: seqs[2], broker: 'kiot/default', ttl: 254, event: event('e3'), triggers: ['kiot/a', 'kiot/b'] },
    ]);
    expect(second.pending()).toBe(2);
    const next = await second.accept({ broker: 'kiot/default', ttl: 10, triggers: ['kiot/a'], event: event('e4') });
    expect(next).toBeGreaterThan(seqs[2]!);
    second.done(seqs[1]!, 'kiot/a');
    await second.close();

    const third = await openJournal({ dir, segmentBytes: 1 << 20, logger });
    expect(third.unfinished.map((entry) => entry.event.id)).toEqual(['e3', 'e4']);
    await third.close();
  });

  it('keeps a whole record written before a torn tail, and what followed it in later segments', async () => {
    const dir = await tempDir();
    const first = await openJournal({ dir, segmentBytes: 1 << 20, logger });
    await first.accept({ broker: 'kiot/default', ttl: 254, triggers: ['kiot/a'], event: event('kept') });
    await first.close();
    const [segment] = await segments(dir);
    await appendFile(join(dir, segment!), encodeRecord({ d: 1, k: 'kiot/a' }).slice(0, 15));
    const second = await openJournal({ dir, segmentBytes: 1 << 20, logger });
    expect(second.unfinished.map((entry) => entry.event.id)).toEqual(['kept']);
    await second.close();
  });

  it('rolls segments at the size limit and deletes a segment once every event in it (and before it) is done', async () => {
    const dir = await tempDir();
    const journal = await openJournal({ dir, segmentBytes: 4_096, logger });
    const big = (id: string) => ({ ...event(id), data: 'x'.repeat(1_500) });
    const seqs: number[] = [];
    // Every third event passes the limit and rolls the segment over (in the background).
    while ((await segments(dir)).length < 4) {
      seqs.push(
        await journal.accept({ broker: 'kiot/default', ttl: 254, triggers: ['kiot/a'], event: big(`e${seqs.length}`) }),
      );
    }
    // The oldest event holds its segment, and so every later one, however finished they are.
    const before = await segments(dir);
    for (const seq of seqs.slice(1)) journal.done(seq, 'kiot/a');
    expect(await segments(dir)).toEqual(expect.arrayContaining(before));
    journal.done(seqs[0]!, 'kiot/a');
    await waitFor(
      async () => (await segments(dir)).length === 1,
      () => segments(dir),
    );
    await journal.close();
    const reopened = await openJournal({ dir, segmentBytes: 4_096, logger });
    expect(reopened.unfinished).toEqual([]);
    await reopened.close();
  });

  it('refuses a journal another live router holds, and takes over one a dead router left', async () => {
    const dir = await tempDir();
    const other: ChildProcess = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)', 'dist/router.js'], {
      stdio: 'ignore',
    });
    cleanup.push(async () => other.kill('SIGKILL'));
    await writeFile(join(dir, 'owner.pid'), `${other.pid}\n`);
    await expect(openJournal({ dir, segmentBytes: 1 << 20, logger })).rejects.toThrow(
      `in use by the router with pid ${other.pid}`,
    );
    other.kill('SIGKILL');
    await new Promise((resolve) => other.once('exit', resolve));
    const journal = await openJournal({ dir, segmentBytes: 1 << 20, logger });
    expect((await readFile(join(dir, 'owner.pid'), 'utf8')).trim()).toBe(String(process.pid));
    await journal.close();
  });

  it('ignores a segment cut anywhere: every record before the cut survives', async () => {
    const dir = await tempDir();
    const journal = await openJournal({ dir, segmentBytes: 1 << 20, logger });
    for (let i = 0; i < 20; i += 1) {
      await journal.accept({ broker: 'kiot/default', ttl: 254, triggers: ['kiot/a'], event: event(`e${i}`) });
    }
    await journal.close();
    const [segment] = await segments(dir);
    const text = await readFile(join(dir, segment!), 'utf8');
    const lines = text.split('\n').filter(Boolean);
    for (const cut of [0, 1, lines[0]!.length + 5, Math.floor(text.length / 2), text.length - 1]) {
      await writeFile(join(dir, segment!), text);
      await truncate(join(dir, segment!), cut);
      // A record counts once all of its line is there (its newline is not part of the checksum).
      const ends = lines.map((_, i) => lines.slice(0, i + 1).join('\n').length);
      const whole = ends.filter((end) => end <= cut).length;
      const reopened = await openJournal({ dir, segmentBytes: 1 << 20, logger });
      expect(reopened.unfinished.map((entry) => entry.event.id)).toEqual(
        Array.from({ length: whole }, (_, i) => `e${i}`),
      );
      await reopened.close();
      // Only the segment under test: drop the ones the reopening started.
      for (const name of await segments(dir)) if (name !== segment) await rm(join(dir, name));
    }
  });
});

async function waitFor(
  check: () => Promise<boolean>,
  describe: () => Promise<unknown> = async () => '',
): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met: ${JSON.stringify(await describe())}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
