import { CloudEvent, type CloudEventV1, type Headers, HTTP } from 'cloudevents';
import { InvalidInputError } from './errors.js';

export type { CloudEventV1 };
export { CloudEvent };

const REQUIRED_ATTRIBUTES = ['id', 'source', 'type', 'specversion'] as const;
const STRUCTURED = 'application/cloudevents+json';
const BATCH = 'application/cloudevents-batch+json';

function lowerCaseHeaders(headers: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    out[name.toLowerCase()] = Array.isArray(value) ? value.join(',') : String(value);
  }
  return out;
}

function mediaType(headers: Record<string, string>): string {
  return (headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
}

/** Whether an HTTP request carries a CloudEvent (binary: `ce-specversion`; structured: its media type). */
export function isCloudEventRequest(headers: Headers): boolean {
  const lower = lowerCaseHeaders(headers);
  const type = mediaType(lower);
  return 'ce-specversion' in lower || type === STRUCTURED || type === BATCH;
}

/**
 * Parses a CloudEvent from an HTTP request in binary or structured mode (CloudEvents HTTP binding §3).
 * The SDK fills in a missing `id` or `specversion` on its own, so the required attributes
 * (CloudEvents spec §3.1) are checked here first: a producer that omits them gets a 400.
 */
export function parseCloudEvent(
  headers: Headers,
  body: Buffer | string | undefined,
  /** The body as JSON when the server has parsed it already (the functions framework does): not parsed again. */
  parsed?: { value: unknown },
): CloudEvent<unknown> {
  const lower = lowerCaseHeaders(headers);
  const type = mediaType(lower);
  const text = body === undefined ? '' : typeof body === 'string' ? body : body.toString('utf8');
  if (type === BATCH)
    throw new InvalidInputError('batched CloudEvents are not accepted', undefined, 'invalid_cloudevent');

  let missing: string[];
  if (type === STRUCTURED) {
    let envelope: unknown = parsed?.value;
    if (parsed === undefined) {
      try {
        envelope = JSON.parse(text);
      } catch {
        throw new InvalidInputError('the structured CloudEvent is not valid JSON', undefined, 'invalid_cloudevent');
      }
    }
    if (typeof envelope !== 'object' || envelope === null || Array.isArray(envelope)) {
      throw new InvalidInputError('the structured CloudEvent is not a JSON object', undefined, 'invalid_cloudevent');
    }
    const record = envelope as Record<string, unknown>;
    missing = REQUIRED_ATTRIBUTES.filter((name) => typeof record[name] !== 'string' || record[name] === '');
  } else {
    missing = REQUIRED_ATTRIBUTES.filter((name) => !lower[`ce-${name}`]);
  }
  if (missing.length > 0) {
    throw new InvalidInputError(
      `the CloudEvent lacks required attributes: ${missing.join(', ')}`,
      { missing },
      'invalid_cloudevent',
    );
  }
  // Binary-mode data that is not text stays bytes (HTTP binding §3.1.1); everything else is read as UTF-8.
  const textual =
    type === STRUCTURED ||
    type === '' ||
    type.startsWith('text/') ||
    type.endsWith('json') ||
    type.endsWith('+json') ||
    type.endsWith('xml');
  // JSON the server parsed goes to the SDK as the value (its JSON parser passes objects through): parsed once.
  const json = parsed !== undefined && (type === STRUCTURED || type === 'application/json' || type.endsWith('+json'));
  const payload = json ? parsed.value : !textual && Buffer.isBuffer(body) ? body : text;
  // The SDK's JSON parser builds two ValidationErrors per event before it checks anything (arguments of its
  // checks), each capturing a stack trace: ~0.8 % of telemetry-ingest's CPU in the storage step (issue 12).
  // Only an error's message is used, so no stack is captured while the SDK runs (synchronous: nothing else
  // runs meanwhile; the limit is restored before anything is thrown from here).
  const stackTraceLimit = Error.stackTraceLimit;
  let event: ReturnType<typeof HTTP.toEvent> | undefined;
  let failure: unknown;
  Error.stackTraceLimit = 0;
  try {
    event = HTTP.toEvent({ headers: lower, body: payload as string });
  } catch (error) {
    failure = error;
  } finally {
    Error.stackTraceLimit = stackTraceLimit;
  }
  if (event === undefined || Array.isArray(event)) {
    const reason = event === undefined ? failure : new Error('batch');
    throw new InvalidInputError(
      `the CloudEvent is invalid: ${reason instanceof Error ? reason.message : String(reason)}`,
      undefined,
      'invalid_cloudevent',
    );
  }
  return event as CloudEvent<unknown>;
}

/** The event as an HTTP message in binary mode (HTTP binding §3.1): attributes as `ce-` headers. */
export function toBinaryMessage(event: CloudEventV1<unknown>): {
  headers: Record<string, string>;
  body: string | Buffer;
} {
  const message = HTTP.binary(event);
  // Binary data (HTTP binding §3.1.1) travels as the raw bytes, never re-encoded as text.
  const body = message.body instanceof Uint8Array ? Buffer.from(message.body) : serializeBody(message.body);
  return { headers: stringHeaders(message.headers), body };
}

/** The event as an HTTP message in structured mode (HTTP binding §3.2). */
export function toStructuredMessage(event: CloudEventV1<unknown>): { headers: Record<string, string>; body: string } {
  const message = HTTP.structured(event);
  return { headers: stringHeaders(message.headers), body: serializeBody(message.body) };
}

function stringHeaders(headers: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) out[name] = Array.isArray(value) ? value.join(',') : String(value);
  }
  return out;
}

function serializeBody(body: unknown): string {
  if (body === undefined || body === null) return '';
  if (typeof body === 'string') return body;
  if (Buffer.isBuffer(body)) return body.toString('utf8');
  return JSON.stringify(body);
}
