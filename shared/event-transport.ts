import type { Dispatcher } from 'undici';
import {
  type CloudEvent,
  type CloudEventV1,
  isCloudEventRequest,
  parseCloudEvent,
  toBinaryMessage,
} from './cloudevents.js';
import { isRetryableStatus } from './errors.js';

/**
 * undici, loaded on the first POST: a function that scales from zero answers its first request (often
 * a probe) without evaluating it, which is ~10 % of a cold start and of its resident memory.
 */
let undici: Promise<typeof import('undici')> | undefined;
const loadUndici = () => (undici ??= import('undici'));

/** What posting needs of a connection pool; an undici `Agent` is one. */
export interface EventDispatcher {
  request(options: Dispatcher.RequestOptions): Promise<Dispatcher.ResponseData>;
  close(): Promise<void>;
}

/** A keep-alive connection pool for posting events, created on first use; share one per process. */
export function createEventDispatcher(connections = 64): EventDispatcher {
  let agent: Dispatcher | undefined;
  let creating: Promise<Dispatcher> | undefined;
  const create = () =>
    (creating ??= loadUndici().then(
      ({ Agent }) => (agent = new Agent({ connections, keepAliveTimeout: 30_000, pipelining: 1 })),
    ));
  return {
    request: (options) => (agent ? agent.request(options) : create().then((ready) => ready.request(options))),
    close: async () => {
      if (creating) await (await creating).close();
    },
  };
}

export interface PostResult {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** Origin and path of a target URL, parsed once per distinct URL (a process posts to a handful of sinks). */
const targets = new Map<string, { origin: string; path: string }>();
function targetOf(url: string): { origin: string; path: string } {
  let target = targets.get(url);
  if (!target) {
    const parsed = new URL(url);
    target = { origin: parsed.origin, path: `${parsed.pathname}${parsed.search}` };
    if (targets.size < 1_000) targets.set(url, target);
  }
  return target;
}

const EMPTY = Buffer.alloc(0);

/**
 * POSTs an HTTP message (already serialised) and reads the whole answer. Network errors throw.
 * Goes straight to the dispatcher with the URL parsed once: the hot path of the bridge and the router.
 */
export async function postMessage(
  url: string,
  message: { headers: Record<string, string>; body: string | Buffer },
  options: { dispatcher?: EventDispatcher; timeoutMs?: number } = {},
): Promise<PostResult> {
  const timeout = options.timeoutMs ?? 30_000;
  const { origin, path } = targetOf(url);
  const dispatcher = options.dispatcher ?? (await loadUndici()).getGlobalDispatcher();
  const response = await dispatcher.request({
    origin,
    path,
    method: 'POST',
    headers: message.headers,
    body: message.body,
    headersTimeout: timeout,
    bodyTimeout: timeout,
  });
  const headers: Record<string, string> = {};
  for (const name in response.headers) {
    const value = response.headers[name];
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(',') : value;
  }
  // Most answers (a 202/204 from a sink) have no body: skip the collecting machinery for them.
  let body = EMPTY;
  if (headers['content-length'] === '0') await response.body.dump();
  else body = Buffer.from(await response.body.arrayBuffer());
  return { status: response.statusCode, headers, body };
}

/** POSTs one CloudEvent in binary mode and reads the whole answer. Network errors throw. */
export async function postCloudEvent(
  url: string,
  event: CloudEventV1<unknown>,
  options: { dispatcher?: EventDispatcher; timeoutMs?: number; extraHeaders?: Record<string, string> } = {},
): Promise<PostResult> {
  const message = toBinaryMessage(event);
  if (options.extraHeaders) Object.assign(message.headers, options.extraHeaders);
  return postMessage(url, message, options);
}

export type DeliveryVerdict = 'delivered' | 'retry' | 'permanent';

/** What a sender does with an answer, by Knative's rules: 2xx done, retryable statuses again, the rest dead-lettered. */
export function deliveryVerdict(status: number): DeliveryVerdict {
  if (status >= 200 && status < 300) return 'delivered';
  return isRetryableStatus(status) ? 'retry' : 'permanent';
}

/** A reply event in a 2xx answer (Knative feeds it back into the Broker), if there is one. */
export function replyEventOf(result: PostResult): CloudEvent<unknown> | undefined {
  if (result.status < 200 || result.status >= 300 || result.body.length === 0) return undefined;
  if (!isCloudEventRequest(result.headers)) return undefined;
  try {
    return parseCloudEvent(result.headers, result.body);
  } catch {
    return undefined;
  }
}

export interface BackoffPolicy {
  policy: 'exponential' | 'linear';
  baseMs: number;
  maxMs?: number;
  /** Spread retries of many senders apart ("full jitter"); off where the schedule must be exact. */
  jitter?: boolean;
}

/** Delay before retry number `attempt` (1-based): Knative's `backoffDelay * 2^attempt` or `* attempt`. */
export function backoffDelayMs(backoff: BackoffPolicy, attempt: number, random: () => number = Math.random): number {
  const raw = backoff.policy === 'exponential' ? backoff.baseMs * 2 ** attempt : backoff.baseMs * attempt;
  const capped = Math.min(raw, backoff.maxMs ?? Number.POSITIVE_INFINITY);
  return backoff.jitter ? Math.round(capped / 2 + (random() * capped) / 2) : capped;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
