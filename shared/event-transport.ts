import { Agent, request, type Dispatcher } from 'undici';
import { isRetryableStatus } from './errors.js';
import { parseCloudEvent, isCloudEventRequest, toBinaryMessage, type CloudEvent, type CloudEventV1 } from './cloudevents.js';

/** A keep-alive connection pool for posting events; share one per process. */
export function createEventDispatcher(connections = 64): Dispatcher {
  return new Agent({ connections, keepAliveTimeout: 30_000, pipelining: 1 });
}

export interface PostResult {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** POSTs one CloudEvent in binary mode and reads the whole answer. Network errors throw. */
export async function postCloudEvent(
  url: string,
  event: CloudEventV1<unknown>,
  options: { dispatcher?: Dispatcher; timeoutMs?: number; extraHeaders?: Record<string, string> } = {},
): Promise<PostResult> {
  const message = toBinaryMessage(event);
  const timeout = options.timeoutMs ?? 30_000;
  const response = await request(url, {
    method: 'POST',
    headers: { ...message.headers, ...options.extraHeaders },
    body: message.body,
    dispatcher: options.dispatcher,
    headersTimeout: timeout,
    bodyTimeout: timeout,
  });
  const body = Buffer.from(await response.body.arrayBuffer());
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(response.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(',') : value;
  }
  return { status: response.statusCode, headers, body };
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
