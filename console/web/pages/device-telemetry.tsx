import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type { Api } from '../api.js';
import { TimeChart } from '../components/chart.js';
import { useLoad } from '../components/hooks.js';
import { ErrorNote, Loading, Section } from '../components/ui.js';
import { openLiveStream } from '../live.js';
import { formatDuration, formatTime, formatValue } from '../logic/format.js';
import {
  historyColumns,
  LiveWindow,
  RANGES,
  type RangeId,
  rangeOf,
  type Sample,
  seriesQuery,
} from '../logic/series.js';
import { useSession } from '../session.js';

const MAX_PAGES = 20;

/** Samples since `fromMs` from the raw telemetry API, page by page. */
async function readSince(api: Api, deviceId: string, fromMs: number, signal: AbortSignal): Promise<Sample[]> {
  const from = new Date(fromMs).toISOString();
  const samples: Sample[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < MAX_PAGES; page += 1) {
    const query = new URLSearchParams({ from, limit: '1000', ...(cursor ? { cursor } : {}) });
    const answer: { items: Sample[]; nextCursor: string | null } = await api.get(
      'telemetry-ingest',
      `/devices/${encodeURIComponent(deviceId)}/telemetry?${query}`,
      signal,
    );
    samples.push(...answer.items);
    cursor = answer.nextCursor;
    if (!cursor) break;
  }
  return samples;
}

/** Live: the last 15 minutes read once, then every stored sample as the stream brings it (within a second). */
function LiveCharts(props: { deviceId: string; spanMs: number }) {
  const { api } = useSession();
  const windowRef = useRef(new LiveWindow(props.spanMs));
  const [version, setVersion] = useState(0);
  const [state, setState] = useState<'connecting' | 'live' | 'retrying'>('connecting');
  const [error, setError] = useState<unknown>();
  const frame = useRef<number | undefined>(undefined);
  /** Sample times heard live since the last redraw: reported with the redraw (`kiot:live-drawn`). */
  const heard = useRef<number[]>([]);

  useEffect(() => {
    const window_ = new LiveWindow(props.spanMs);
    windowRef.current = window_;
    // At most one redraw per frame, however fast samples arrive.
    const redraw = () => {
      if (frame.current !== undefined) return;
      frame.current = requestAnimationFrame(() => {
        frame.current = undefined;
        setVersion((n) => n + 1);
        // Observers (bench:console) learn how late each live sample reached the screen.
        if (heard.current.length > 0) {
          const times = heard.current;
          heard.current = [];
          window.dispatchEvent(
            new CustomEvent('kiot:live-drawn', {
              detail: { deviceId: props.deviceId, sampleTimes: times, drawnAt: Date.now() },
            }),
          );
        }
      });
    };
    let reading: AbortController | undefined;
    const reread = () => {
      reading?.abort();
      reading = new AbortController();
      // After a reconnect only what may have been missed: from a little before the newest sample held.
      const since = Math.max(Date.now() - props.spanMs, (window_.newest ?? 0) - 5_000);
      readSince(api, props.deviceId, since, reading.signal).then(
        (samples) => {
          window_.add(samples, Date.now());
          setError(undefined);
          redraw();
        },
        (failure: unknown) => {
          if (!(failure instanceof DOMException)) setError(failure);
        },
      );
    };
    const handlers = {
      onReady: reread,
      onGap: reread,
      onSamples: (samples: Sample[]) => {
        for (const sample of samples) heard.current.push(Date.parse(sample.ts));
        if (window_.add(samples, Date.now()) > 0) redraw();
      },
      onState: setState,
    };
    // A hidden tab lets its stream go (a browser gives one host six HTTP/1.1 connections, and a server holds
    // every open stream); shown again, it reconnects and reads what it missed.
    let stopStream: (() => void) | undefined = openLiveStream(api, props.deviceId, handlers);
    const onVisibility = () => {
      if (document.visibilityState === 'hidden') {
        stopStream?.();
        stopStream = undefined;
      } else stopStream ??= openLiveStream(api, props.deviceId, handlers);
    };
    document.addEventListener('visibilitychange', onVisibility);
    const stop = () => {
      document.removeEventListener('visibilitychange', onVisibility);
      stopStream?.();
    };
    const trim = setInterval(() => {
      window_.trim(Date.now());
      redraw();
    }, 5_000);
    return () => {
      stop();
      reading?.abort();
      clearInterval(trim);
      if (frame.current !== undefined) cancelAnimationFrame(frame.current);
      frame.current = undefined;
    };
  }, [api, props.deviceId, props.spanMs]);

  const live = windowRef.current;
  const metrics = live.metrics;
  const charts = useMemo(
    () =>
      metrics.map((metric) => {
        const latest = live.latest(metric);
        return {
          metric,
          data: live.columns(metric),
          caption: latest
            ? `${metric}: ${formatValue(latest.value)} at ${formatTime(latest.at)} (${live.size} samples in view)`
            : `${metric}: no sample in view`,
        };
      }),
    [version, metrics.join()],
  );
  return (
    <>
      <p class="muted" aria-live="polite" data-testid="live-state">
        {state === 'live'
          ? 'Live: each stored sample appears within a second.'
          : state === 'connecting'
            ? 'Connecting…'
            : 'Reconnecting…'}
      </p>
      <ErrorNote error={error} />
      {charts.length === 0 && state === 'live' ? <p class="muted">No samples in the last 15 minutes yet.</p> : null}
      <div class="charts">
        {charts.map((chart) => (
          <TimeChart
            key={chart.metric}
            title={chart.metric}
            caption={chart.caption}
            data={chart.data}
            testId={`chart-${chart.metric}`}
          />
        ))}
      </div>
    </>
  );
}

interface SeriesAnswer {
  metric: string;
  bucketMs: number;
  sources: string[];
  points: { t: string; avg: number; min: number; max: number; count: number }[];
}

/** History: each metric's downsampled series (min, max and average per bucket) from report-generation. */
function HistoryCharts(props: { deviceId: string; rangeMs: number; metrics: string[] }) {
  const { api } = useSession();
  const series = useLoad(
    (signal) => {
      const now = Date.now();
      return Promise.all(
        props.metrics.map((metric) =>
          api.get<SeriesAnswer>(
            'report-generation',
            `/devices/${encodeURIComponent(props.deviceId)}/series?${seriesQuery(metric, props.rangeMs, now)}`,
            signal,
          ),
        ),
      );
    },
    [api, props.deviceId, props.rangeMs, props.metrics.join()],
  );
  if (series.error) return <ErrorNote error={series.error} what="The history could not be read" />;
  if (!series.data) return <Loading what="history" />;
  return (
    <div class="charts">
      {series.data.map((answer) => (
        <TimeChart
          key={answer.metric}
          title={answer.metric}
          bands
          caption={`${answer.metric}: ${answer.points.length} buckets of ${formatDuration(answer.bucketMs)}, average with min and max (from ${answer.sources.join(', ') || 'no data'})`}
          data={historyColumns(answer.points)}
          testId={`chart-${answer.metric}`}
        />
      ))}
    </div>
  );
}

export function TelemetryPanel(props: { deviceId: string; range: RangeId; onRange(range: RangeId): void }) {
  const { api, can } = useSession();
  const range = rangeOf(props.range);
  // The metrics a device sends: those of its recent samples (the last day).
  const metrics = useLoad(
    async (signal) => {
      const answer = await api.get<{ items: Sample[] }>(
        'telemetry-ingest',
        `/devices/${encodeURIComponent(props.deviceId)}/telemetry?limit=100&from=${new Date(Date.now() - Math.max(range.ms, 86_400_000)).toISOString()}`,
        signal,
      );
      return [...new Set(answer.items.flatMap((sample) => Object.keys(sample.metrics)))].sort();
    },
    [api, props.deviceId, props.range],
  );
  return (
    <Section
      title="Telemetry"
      actions={
        <label class="inline">
          <span>Range</span>
          <select value={props.range} onChange={(e) => props.onRange(e.currentTarget.value as RangeId)} name="range">
            {RANGES.map((option) => (
              <option key={option.id} value={option.id}>
                {option.label}
              </option>
            ))}
          </select>
        </label>
      }
    >
      {!can.telemetryRead ? <p class="muted">This key cannot read telemetry.</p> : null}
      {can.telemetryRead && range.id === 'live' ? <LiveCharts deviceId={props.deviceId} spanMs={range.ms} /> : null}
      {can.telemetryRead && range.id !== 'live' ? (
        !can.reportsRead ? (
          <p class="muted">History needs the reports:read scope.</p>
        ) : metrics.data ? (
          metrics.data.length > 0 ? (
            <HistoryCharts deviceId={props.deviceId} rangeMs={range.ms} metrics={metrics.data} />
          ) : (
            <p class="muted">No samples in this range.</p>
          )
        ) : (
          <Loading what="metrics" />
        )
      ) : null}
    </Section>
  );
}
