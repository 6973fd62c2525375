import { type CloudEventV1, toStructuredMessage } from '../../shared/cloudevents.js';
import { type EventDispatcher, type PostResult, postCloudEvent, postMessage } from '../../shared/event-transport.js';

export interface SendOptions {
  format: 'binary' | 'json';
  timeoutMs: number;
  dispatcher?: EventDispatcher;
  /** The delivery's `Authorization` (shared/event-auth.ts), when sender identity is on. */
  headers?: Record<string, string>;
}

/**
 * POSTs one event to a subscriber or a dead-letter sink. Binary mode unless the delivery spec says
 * `format: json` (structured). Knative's dispatcher adds `Prefer: reply` to every subscriber request
 * (knative/eventing#5764), so subscribers may answer with a reply event.
 */
export async function sendEvent(url: string, event: CloudEventV1<unknown>, options: SendOptions): Promise<PostResult> {
  const extraHeaders = { prefer: 'reply', ...options.headers };
  if (options.format === 'binary') {
    return postCloudEvent(url, event, { dispatcher: options.dispatcher, timeoutMs: options.timeoutMs, extraHeaders });
  }
  const message = toStructuredMessage(event);
  return postMessage(
    url,
    { headers: { ...message.headers, ...extraHeaders }, body: message.body },
    { dispatcher: options.dispatcher, timeoutMs: options.timeoutMs },
  );
}
