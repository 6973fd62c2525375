import { type FileHandle, mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * An append-only file with a group commit: whatever callers append while a write is running is written
 * next, in one `write` and one `fdatasync` for all of them, so the rate holds however small the records
 * are. A durable append resolves only after its bytes are on disk (fdatasync also persists the file size
 * an append changes: Linux fdatasync(2)); a lazy one rides along with the next write and resolves when
 * written. Records are written in the order they were appended.
 */
export interface DurableAppend {
  readonly path: string;
  /** Bytes in the file (written and pending). */
  readonly size: number;
  append(text: string, options?: { durable?: boolean }): Promise<void>;
  /** Writes what is pending and closes the file. */
  close(): Promise<void>;
}

interface Waiter {
  resolve(): void;
  reject(error: unknown): void;
}

/** Makes a newly created file's directory entry durable too (fsync of the directory, fsync(2) NOTES). */
export async function syncDirectory(path: string): Promise<void> {
  const directory = await open(path, 'r');
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}

export async function openDurableAppend(path: string): Promise<DurableAppend> {
  await mkdir(dirname(path), { recursive: true });
  const file: FileHandle = await open(path, 'a');
  const { size: existing } = await file.stat();
  await syncDirectory(dirname(path));
  let size = existing;
  /** Bytes known to be whole in the file: a failed write is cut back to here, so no torn record stays. */
  let whole = existing;
  let broken: unknown;
  let pending: Buffer[] = [];
  let waiters: Waiter[] = [];
  let syncWanted = false;
  let writing: Promise<void> | undefined;

  async function writeAll(buffer: Buffer): Promise<void> {
    let offset = 0;
    while (offset < buffer.length) {
      const { bytesWritten } = await file.write(buffer, offset, buffer.length - offset);
      offset += bytesWritten;
    }
  }

  async function pump(): Promise<void> {
    while (pending.length > 0) {
      const buffer = Buffer.concat(pending);
      const batch = waiters;
      const sync = syncWanted;
      pending = [];
      waiters = [];
      syncWanted = false;
      try {
        await writeAll(buffer);
        whole += buffer.length;
        if (sync) await file.datasync();
        for (const waiter of batch) waiter.resolve();
      } catch (error) {
        // ENOSPC, EIO: these records are refused (their callers answer 5xx and are retried). Cut the file
        // back so that later records do not follow a torn one; if even that fails, refuse everything.
        await file.truncate(whole).catch((truncateError: unknown) => {
          broken = truncateError;
        });
        size = whole + pending.reduce((sum, next) => sum + next.length, 0);
        for (const waiter of batch) waiter.reject(error);
      }
    }
    writing = undefined;
  }

  return {
    path,
    get size() {
      return size;
    },
    append(text, options = {}) {
      if (broken !== undefined) return Promise.reject(broken);
      const buffer = Buffer.from(text, 'utf8');
      size += buffer.length;
      pending.push(buffer);
      if (options.durable !== false) syncWanted = true;
      const done = new Promise<void>((resolve, reject) => waiters.push({ resolve, reject }));
      writing ??= pump();
      return done;
    },
    async close() {
      while (writing) await writing;
      await file.close();
    },
  };
}
