// Parts of bench:ingest (scripts/bench/ingest.ts): the storage step alone, the function's insert histogram,
// and the latency of each hop of a paced run.
import { randomUUID } from 'node:crypto';
import { Agent, request } from 'undici';
import { CloudEvent, toBinaryMessage } from '../../../shared/cloudevents.js';

export const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN;

export async function pooled(total: number, concurrency: number, work: (i: number) => Promise<void>): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) await work(next++);
    }),
  );
  return performance.now() - started;
}

/** The cumulative buckets of one of the function's histograms: [upper bound in s, count]. */
export type Buckets = (readonly [number, number])[];

/** A histogram's buckets from a `/metrics` text; `label` narrows it to one series (`type="io.kiot.telemetry.batch"`). */
export async function histogramBuckets(metricsUrl: string, name: string, label = ''): Promise<Buckets> {
  const text = await (await fetch(metricsUrl)).text();
  const escaped = label.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  // prom-client writes `le` first, then the series' labels.
  const line = new RegExp(`^${name}_bucket\\{le="([^"]+)"${escaped ? `,${escaped}` : ''}\\} (\\d+)$`, 'gm');
  return [...text.matchAll(line)].map((m) => [m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2])] as const);
}

/**
 * The upper bound (ms) of the bucket holding quantile `q` of what was observed between two snapshots of a
 * histogram (one phase's own observations). Beyond the last finite bucket: that bucket, a lower bound.
 */
export function bucketQuantileMs(before: Buckets, after: Buckets, q: number): number {
  const delta = after.map(([le, count], i) => [le, count - (before[i]?.[1] ?? 0)] as const);
  const total = delta[delta.length - 1]?.[1] ?? 0;
  const bound = delta.find(([, count]) => count >= total * q)?.[0] ?? Infinity;
  const finite = delta.filter(([le]) => le !== Infinity);
  return Math.round((bound === Infinity ? (finite[finite.length - 1]?.[0] ?? NaN) : bound) * 1000);
}

/** One stored sample's times: the device's `ts`, the bridge's receive time, the issue of its insert. */
export interface SampleTimes {
  ts: Date;
  receivedAt: Date;
  ingestedAt: Date;
}

/** p50/p99 (ms) of each hop: device → bridge (MQTT), bridge → insert issued (batch linger, router, function). */
export function hopLatencies(docs: SampleTimes[]) {
  const of = (values: number[]) => {
    const sorted = values.sort((a, b) => a - b);
    return { p50: percentile(sorted, 50), p90: percentile(sorted, 90), p99: percentile(sorted, 99) };
  };
  return {
    deviceToBridge: of(docs.map((d) => d.receivedAt.getTime() - d.ts.getTime())),
    bridgeToInsert: of(docs.map((d) => d.ingestedAt.getTime() - d.receivedAt.getTime())),
    deviceToInsert: of(docs.map((d) => d.ingestedAt.getTime() - d.ts.getTime())),
  };
}

/** Per half second of a paced phase (by the devices' `ts`): how many of its messages took over `overMs`, `t:slow/all`. */
export function slowByHalfSecond(docs: SampleTimes[], overMs: number): string {
  const start = Math.min(...docs.map((d) => d.ts.getTime()));
  const bins = new Map<number, { slow: number; all: number }>();
  for (const d of docs) {
    const bin = Math.floor((d.ts.getTime() - start) / 500);
    const counts = bins.get(bin) ?? { slow: 0, all: 0 };
    counts.all += 1;
    if (d.ingestedAt.getTime() - d.ts.getTime() > overMs) counts.slow += 1;
    bins.set(bin, counts);
  }
  return [...bins]
    .sort(([a], [b]) => a - b)
    .map(([bin, { slow, all }]) => `${bin / 2}s:${slow}/${all}`)
    .join(' ');
}

/**
 * Telemetry batches of `batchSize` messages POSTed straight to the function (binary mode), `concurrency` at once.
 * Every request is encoded when the step is prepared, before its clock and CPU meters start, as an HTTP load
 * generator sends prepared requests: the poster stands in for the bridge, whose CPU is not the step's, and on two
 * cores each microsecond it spent encoding was taken from the function and the stores (3–5 µs per message,
 * session 10). The raw insertMany passes build their documents before their clock starts too (ingest.ts), so
 * both sides time only what they measure.
 */
export function prepareStorageStep(options: {
  url: string;
  ids: string[];
  messages: number;
  batchSize: number;
  concurrency: number;
  prefix: string;
}): { send(): Promise<number> } {
  const batches = Math.ceil(options.messages / options.batchSize);
  const time = new Date().toISOString();
  const requests: ({ headers: Record<string, string>; body: Buffer } | undefined)[] = Array.from(
    { length: batches },
    (_, b) => {
      const items = Array.from({ length: options.batchSize }, (_, k) => {
        const i = b * options.batchSize + k;
        return {
          id: `${options.prefix}-${i}`,
          subject: options.ids[i % options.ids.length],
          time,
          datacontenttype: 'application/json',
          data: { ts: Date.now(), metrics: { temp: 20 + (i % 10), hum: 40 }, msgId: `st${i}` },
        };
      });
      const event = new CloudEvent({
        id: randomUUID(),
        source: '/bench',
        type: 'io.kiot.telemetry.batch',
        datacontenttype: 'application/json',
        data: items,
      });
      const message = toBinaryMessage(event);
      return { headers: message.headers as Record<string, string>, body: Buffer.from(message.body as string) };
    },
  );
  return { send: () => sendAll(options.url, requests, options.concurrency, options.batchSize) };
}

/** Sends prepared requests, `concurrency` at once: messages per second. */
async function sendAll(
  url: string,
  requests: ({ headers: Record<string, string>; body: Buffer } | undefined)[],
  concurrency: number,
  batchSize: number,
): Promise<number> {
  const agent = new Agent({ connections: 32, keepAliveTimeout: 30_000 });
  const batches = requests.length;
  const ms = await pooled(batches, concurrency, async (b) => {
    const prepared = requests[b]!;
    requests[b] = undefined; // sent once: its memory goes
    const answer = await request(url, {
      method: 'POST',
      headers: prepared.headers,
      body: prepared.body,
      dispatcher: agent,
    });
    await answer.body.dump();
    if (answer.statusCode !== 204) throw new Error(`function answered ${answer.statusCode}`);
  });
  await agent.close();
  return ((batches * batchSize) / ms) * 1000;
}
