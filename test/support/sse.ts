import { createParser, type EventSourceMessage } from 'eventsource-parser';

/** A server-sent events stream read with fetch (as the console reads it: the API key goes in a header). */
export interface Stream {
  events: EventSourceMessage[];
  waitFor(predicate: (events: EventSourceMessage[]) => boolean, what: string): Promise<void>;
  close(): void;
  status: number;
}

export async function openStream(url: string, key: string): Promise<Stream> {
  const abort = new AbortController();
  const response = await fetch(url, { headers: { authorization: key }, signal: abort.signal });
  const events: EventSourceMessage[] = [];
  const waiters = new Set<() => void>();
  const parser = createParser({
    onEvent(event) {
      events.push(event);
      for (const wake of [...waiters]) wake();
    },
  });
  if (response.ok && response.body) {
    void (async () => {
      const decoder = new TextDecoder();
      try {
        for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>)
          parser.feed(decoder.decode(chunk, { stream: true }));
      } catch {
        // closed: by the test, or by the server at the end
      }
    })();
  }
  return {
    events,
    status: response.status,
    close: () => abort.abort(),
    waitFor: (predicate, what) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (!predicate(events)) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out waiting for ${what} (${url}); got ${JSON.stringify(events)}`));
        }, 20_000);
        waiters.add(check);
        check();
      }),
  };
}
