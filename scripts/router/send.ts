import { request, type Dispatcher } from 'undici';
import { toStructuredMessage, type CloudEventV1 } from '../../shared/cloudevents.js';
import { postCloudEvent, type PostResult } from '../../shared/event-transport.js';

export interface SendOptions {
  format: 'binary' | 'json';
  timeoutMs: number;
  dispatcher?: Dispatcher;
}

/**
 * POSTs one event to a subscriber or a dead-letter sink. Binary mode unless the delivery spec says
 * `format: json` (structured). Knative's dispatcher adds `Prefer: reply` to every subscriber request
 * (knative/eventing#5764), so subscribers may answer with a reply event.
 */
export async function sendEvent(url: string, event: CloudEventV1<unknown>, options: SendOptions): Promise<PostResult> {
  const extraHeaders = { prefer: 'reply' };
  if (options.format === 'binary') {
    return postCloudEvent(url, event, { dispatcher: options.dispatcher, timeoutMs: options.timeoutMs, extraHeaders });
  }
  const message = toStructuredMessage(event);
  const response = await request(url, {
    method: 'POST',
    headers: { ...message.headers, ...extraHeaders },
    body: message.body,
    dispatcher: options.dispatcher,
    headersTimeout: options.timeoutMs,
    bodyTimeout: options.timeoutMs,
  });
  const body = Buffer.from(await response.body.arrayBuffer());
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(response.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(',') : value;
  }
  return { status: response.statusCode, headers, body };
}
