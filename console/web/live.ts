import { createParser } from 'eventsource-parser';
import type { Api } from './api.js';
import type { Sample } from './logic/series.js';

export interface LiveHandlers {
  /** The stream is subscribed: read what came before from the API now (nothing falls in between). */
  onReady(): void;
  onSamples(samples: Sample[]): void;
  /** Something may have been missed: read the window again. */
  onGap(): void;
  onState?(state: 'connecting' | 'live' | 'retrying'): void;
}

/**
 * A device's live samples (telemetry-ingest `GET /devices/{id}/telemetry/stream`): server-sent events read
 * with fetch, because EventSource cannot send the API key in a header. Reconnects after the server's
 * `retry` (the stream ends on purpose every few minutes so replicas can drain) and after a failure.
 */
export function openLiveStream(api: Api, deviceId: string, handlers: LiveHandlers): () => void {
  let stopped = false;
  let abort: AbortController | undefined;
  let retryMs = 2_000;
  let timer: ReturnType<typeof setTimeout> | undefined;

  const connect = async () => {
    if (stopped) return;
    handlers.onState?.('connecting');
    abort = new AbortController();
    try {
      const response = await api.fetch(
        'telemetry-ingest',
        `/devices/${encodeURIComponent(deviceId)}/telemetry/stream`,
        {
          headers: { accept: 'text/event-stream' },
          signal: abort.signal,
        },
      );
      if (!response.ok || !response.body) throw new Error(`the live stream answered ${response.status}`);
      const parser = createParser({
        onRetry: (ms) => {
          retryMs = ms;
        },
        onEvent: (event) => {
          if (event.event === 'ready') {
            handlers.onState?.('live');
            handlers.onReady();
          } else if (event.event === 'samples') handlers.onSamples(JSON.parse(event.data) as Sample[]);
          else if (event.event === 'gap') handlers.onGap();
        },
      });
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.feed(value);
      }
    } catch (error) {
      if (stopped || (error instanceof DOMException && error.name === 'AbortError')) return;
    }
    if (stopped) return;
    handlers.onState?.('retrying');
    timer = setTimeout(() => void connect(), retryMs);
  };
  void connect();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    abort?.abort();
  };
}
