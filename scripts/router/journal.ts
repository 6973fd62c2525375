import { mkdir, readdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DependencyUnavailableError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import { type DurableAppend, openDurableAppend, syncDirectory } from './durable-append.js';
import { type AcceptedRecord, decodeSegment, encodeRecord } from './journal-records.js';

/** An accepted event whose deliveries had not all ended when the router last stopped. */
export interface JournaledEvent {
  seq: number;
  broker: string;
  ttl: number;
  /** The event as subscribers get it, in the CloudEvents JSON format. */
  event: Record<string, unknown>;
  /** The Triggers still to deliver to. */
  triggers: string[];
}

/**
 * The broker's promise kept on disk: an event is acknowledged (202) only once its record is durable,
 * and each Trigger's delivery is marked when it ends, so a restart after a crash delivers exactly what
 * was left. (Knative's durable brokers do the same with Kafka or RabbitMQ; the in-memory channel does not.)
 */
export interface EventJournal {
  readonly enabled: boolean;
  /** Resolves once the record is on disk (fdatasync, group commit); returns the event's sequence number. */
  accept(entry: { broker: string; ttl: number; triggers: string[]; event: Record<string, unknown> }): Promise<number>;
  /** One Trigger's delivery of `seq` has ended. Written lazily: if it is lost, the event is delivered again. */
  done(seq: number, trigger: string): void;
  /** What the last run left undelivered, oldest first. */
  readonly unfinished: readonly JournaledEvent[];
  /** Events accepted and not yet delivered everywhere. */
  pending(): number;
  close(): Promise<void>;
}

/** No journal (ROUTER_JOURNAL=off): events live in memory only, as on Knative's InMemoryChannel. */
export function memoryOnly(): EventJournal {
  let seq = 0;
  return {
    enabled: false,
    accept: async () => ++seq,
    done: () => undefined,
    unfinished: [],
    pending: () => 0,
    close: async () => undefined,
  };
}

interface Segment {
  id: number;
  path: string;
  /** Events accepted in this segment whose deliveries have not all ended. */
  open: number;
  /** Resolves once nothing more is written to it. */
  closed: Promise<void>;
}

const SEGMENT = /^segment-(\d{12})\.log$/;
const segmentPath = (dir: string, id: number) => join(dir, `segment-${String(id).padStart(12, '0')}.log`);

/** One router per journal: a second one would deliver the same events twice. */
async function lock(dir: string): Promise<string> {
  const path = join(dir, 'owner.pid');
  try {
    const pid = Number((await readFile(path, 'utf8')).trim());
    const command = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (pid !== process.pid && command.includes('router')) {
      throw new Error(`the journal ${dir} is in use by the router with pid ${pid}`);
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  await writeFile(path, `${process.pid}\n`);
  return path;
}

export async function openJournal(options: {
  dir: string;
  segmentBytes: number;
  logger: Logger;
}): Promise<EventJournal> {
  const { dir, logger } = options;
  await mkdir(dir, { recursive: true });
  const ownerFile = await lock(dir);

  // Step 1: replay every segment in order: accepted events minus the deliveries that ended.
  const segments = new Map<number, Segment>();
  const waiting = new Map<number, { segment: number; triggers: Set<string>; record?: AcceptedRecord }>();
  let lastSeq = 0;
  let skipped = 0;
  const ids = (await readdir(dir))
    .map((name) => SEGMENT.exec(name)?.[1])
    .filter((id) => id !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
  for (const id of ids) {
    const decoded = decodeSegment(await readFile(segmentPath(dir, id), 'utf8'));
    skipped += decoded.skipped;
    segments.set(id, { id, path: segmentPath(dir, id), open: 0, closed: Promise.resolve() });
    for (const record of decoded.records) {
      if ('a' in record) {
        lastSeq = Math.max(lastSeq, record.a);
        waiting.set(record.a, { segment: id, triggers: new Set(record.k), record });
        continue;
      }
      const entry = waiting.get(record.d);
      entry?.triggers.delete(record.k);
      if (entry?.triggers.size === 0) waiting.delete(record.d);
    }
  }
  for (const entry of waiting.values()) segments.get(entry.segment)!.open += 1;
  const unfinished: JournaledEvent[] = [...waiting.entries()].map(([seq, entry]) => {
    const record = entry.record!;
    entry.record = undefined;
    return { seq, broker: record.b, ttl: record.t, event: record.e, triggers: [...entry.triggers] };
  });
  if (skipped > 0) logger.warn({ dir, skipped }, 'journal records skipped (torn by a crash, or damaged)');

  // Step 2: a fresh segment for this run; the old ones go once their events are delivered.
  type Active = { segment: Segment; file: DurableAppend; closed(): void };
  const start = async (id: number): Promise<Active> => {
    const file = await openDurableAppend(segmentPath(dir, id));
    let closed!: () => void;
    const segment: Segment = { id, path: file.path, open: 0, closed: new Promise((resolve) => (closed = resolve)) };
    segments.set(id, segment);
    return { segment, file, closed };
  };
  let active = await start((ids.at(-1) ?? 0) + 1);
  let rolling: Promise<void> | undefined;

  // Oldest first, and only while every older segment is gone: a segment's done records may be all that
  // says an older segment's events were delivered. One pass at a time.
  let removing = Promise.resolve();
  const removeFinished = () => {
    removing = removing.then(async () => {
      for (const segment of [...segments.values()].sort((x, y) => x.id - y.id)) {
        if (segment === active.segment || segment.open > 0) break;
        await segment.closed;
        segments.delete(segment.id);
        await unlink(segment.path).catch(() => undefined);
      }
      await syncDirectory(dir).catch(() => undefined);
    });
    return removing;
  };
  const roll = () => {
    rolling ??= (async () => {
      const previous = active;
      active = await start(previous.segment.id + 1);
      await previous.file.close();
      previous.closed();
      await removeFinished();
    })()
      .catch((error: unknown) => logger.error({ err: error, dir }, 'could not start a new journal segment'))
      .finally(() => {
        rolling = undefined;
      });
  };
  void removeFinished();

  return {
    enabled: true,
    unfinished,
    pending: () => waiting.size,
    async accept({ broker, ttl, triggers, event }) {
      const seq = ++lastSeq;
      const { segment, file } = active;
      waiting.set(seq, { segment: segment.id, triggers: new Set(triggers) });
      segment.open += 1;
      try {
        await file.append(encodeRecord({ a: seq, b: broker, t: ttl, k: triggers, e: event }));
      } catch (error) {
        waiting.delete(seq);
        segment.open -= 1;
        logger.error({ err: error, dir }, 'could not journal an event; it is refused');
        throw new DependencyUnavailableError('router journal', error);
      }
      if (file.size >= options.segmentBytes) roll();
      return seq;
    },
    done(seq, trigger) {
      const entry = waiting.get(seq);
      if (!entry?.triggers.delete(trigger)) return;
      active.file.append(encodeRecord({ d: seq, k: trigger }), { durable: false }).catch((error: unknown) => {
        logger.warn({ err: error, seq, trigger }, 'could not journal a finished delivery; it may be delivered again');
      });
      if (entry.triggers.size > 0) return;
      waiting.delete(seq);
      const segment = segments.get(entry.segment);
      if (segment && --segment.open === 0 && segment !== active.segment) void removeFinished();
    },
    async close() {
      while (rolling) await rolling;
      await active.file.close();
      active.closed();
      await removing;
      await unlink(ownerFile).catch(() => undefined);
    },
  };
}
