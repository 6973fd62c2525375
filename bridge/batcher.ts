/** Why a batch was closed: which limit it reached first, or a flush (the bridge stops). */
export type CloseReason = 'count' | 'bytes' | 'linger' | 'flush';

export interface BatcherOptions<T> {
  /** Close once this many items are in (1 = every item alone). */
  maxCount: number;
  /** Close before the JSON array of the items (`[a,b,…]`) would grow past this many bytes. */
  maxBytes: number;
  /** Close this long after the first item went in, however few there are. */
  lingerMs: number;
  onClose(items: T[], reason: CloseReason): void;
}

export interface Batcher<T> {
  /** Adds an item whose JSON takes `bytes`; an item that alone exceeds `maxBytes` is the caller's to refuse. */
  add(item: T, bytes: number): void;
  /** Closes the open batch now, if there is one. */
  flush(): void;
}

/**
 * Groups items into batches that close on whichever comes first: a count, a size (of the JSON array the items
 * make), or a linger time from the first item. Only one batch is open at a time; closing hands it over and
 * the next item opens a new one. Pure apart from the timer.
 */
export function createBatcher<T>(options: BatcherOptions<T>): Batcher<T> {
  let items: T[] = [];
  /** The JSON array so far: brackets, the items and the commas between them. */
  let bytes = 2;
  let timer: NodeJS.Timeout | undefined;

  function close(reason: CloseReason) {
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (items.length === 0) return;
    const closed = items;
    items = [];
    bytes = 2;
    options.onClose(closed, reason);
  }

  return {
    add(item, itemBytes) {
      if (items.length > 0 && bytes + 1 + itemBytes > options.maxBytes) close('bytes');
      bytes += (items.length > 0 ? 1 : 0) + itemBytes;
      items.push(item);
      if (items.length >= options.maxCount) close('count');
      else if (items.length === 1) timer = setTimeout(() => close('linger'), options.lingerMs);
    },
    flush: () => close('flush'),
  };
}
