import type { CloudEvent } from '../../shared/cloudevents.js';
import type { HandlerContext } from '../../shared/function-app.js';
import {
  type DeadLetterRepository,
  type DeliveryError,
  deadLetterId,
  type StoredEvent,
} from './dead-letter-repository.js';

/** Knative's extensions on a dead-lettered event; they describe the failure, not the event. */
export const ERROR_EXTENSIONS = ['knativeerrordest', 'knativeerrorcode', 'knativeerrordata'] as const;

const CORE_ATTRIBUTES = new Set([
  'id',
  'source',
  'type',
  'specversion',
  'subject',
  'time',
  'datacontenttype',
  'dataschema',
  'data',
  'data_base64',
  // CloudEvents 0.3 names the SDK keeps on every event; never extensions.
  'datacontentencoding',
  'schemaurl',
]);

const utf8 = new TextDecoder('utf-8', { fatal: true });

function decodeErrorData(base64: string | undefined): string | undefined {
  if (!base64) return undefined;
  try {
    return utf8.decode(Buffer.from(base64, 'base64'));
  } catch {
    return undefined;
  }
}

const asString = (value: unknown) => (value === undefined || value === null ? undefined : String(value));

/** Splits a received event into the original event and Knative's description of the failure. */
export function splitDeadLetter(event: CloudEvent<unknown>): { event: StoredEvent; error: DeliveryError } {
  const attributes = event.toJSON() as Record<string, unknown>;
  const extensions: StoredEvent['extensions'] = {};
  for (const [name, value] of Object.entries(attributes)) {
    if (CORE_ATTRIBUTES.has(name) || (ERROR_EXTENSIONS as readonly string[]).includes(name) || value === undefined)
      continue;
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') extensions[name] = value;
  }
  const stored: StoredEvent = {
    id: event.id,
    source: event.source,
    type: event.type,
    specversion: event.specversion,
    extensions,
  };
  for (const name of ['subject', 'time', 'datacontenttype', 'dataschema'] as const) {
    const value = asString(attributes[name]);
    if (value !== undefined) stored[name] = value;
  }
  const base64 = asString(attributes.data_base64);
  if (base64 !== undefined) {
    stored.data = base64;
    stored.dataEncoding = 'base64';
  } else if (typeof event.data === 'string') {
    stored.data = event.data;
    stored.dataEncoding = 'text';
  } else if (event.data !== undefined && event.data !== null) {
    // Stored as text, not as a document: event data may hold keys that MongoDB refuses (`$x`, `a.b`).
    stored.data = JSON.stringify(event.data);
    stored.dataEncoding = 'json';
  }
  const code = Number.parseInt(asString(attributes.knativeerrorcode) ?? '', 10);
  const data = asString(attributes.knativeerrordata) ?? null;
  const text = decodeErrorData(data ?? undefined);
  return {
    event: stored,
    error: {
      destination: asString(attributes.knativeerrordest) ?? null,
      code: Number.isFinite(code) ? code : null,
      data,
      ...(text !== undefined ? { text } : {}),
    },
  };
}

/**
 * Use case: keep a dead-lettered event of any type. Idempotent per (event, failed destination): the same
 * arrival twice keeps one record; an arrival after a replay makes the record pending again. The 2xx is
 * sent only once MongoDB has it, so Knative retries until it is durable.
 */
export async function storeDeadLetter(
  received: CloudEvent<unknown>,
  deps: { repository: DeadLetterRepository; now?: () => Date },
  ctx: HandlerContext,
): Promise<void> {
  const { event, error } = splitDeadLetter(received);
  const id = deadLetterId(event, error.destination);
  const { created } = await deps.repository.recordArrival({ id, event, error, at: (deps.now ?? (() => new Date()))() });
  ctx.logger.info(
    {
      deadLetter: { id, created, destination: error.destination, code: error.code },
      ce: { id: event.id, type: event.type },
    },
    'dead letter stored',
  );
}
