import { CloudEvent } from '../../shared/cloudevents.js';
import { AppError, DomainRefusalError, NotFoundError } from '../../shared/errors.js';
import { deliveryVerdict, type PostResult, replyEventOf } from '../../shared/event-transport.js';
import type { HandlerContext } from '../../shared/function-app.js';
import type { DeadLetterDocument, DeadLetterRepository, ReplayAttempt, StoredEvent } from './dead-letter-repository.js';
import type { DeadLetterFilter, ReplayVia } from './schema.js';

export interface ReplayDeps {
  repository: DeadLetterRepository;
  /** POSTs one event in binary mode (network errors throw). */
  send(url: string, event: CloudEvent<unknown>): Promise<PostResult>;
  /** `K_SINK`: the Broker, for events without an allowed original subscriber and for reply events. */
  sink?: string;
  /** Host suffixes a replay may go to directly; empty: any. */
  allowedHosts: readonly string[];
  /**
   * With sender identity on (`EVENT_AUTH=oidc`) a subscriber takes events only from its Triggers, whose tokens
   * this service cannot present: every replay goes through the Broker, with this workload's own token.
   */
  brokerOnly?: boolean;
  now?: () => Date;
}

export interface ReplayOutcome {
  id: string;
  outcome: 'replayed' | 'failed' | 'superseded';
  destination: string;
  status?: number;
  error?: string;
}

/** The original event again: its attributes, extensions and data, without Knative's error extensions. */
export function rebuildEvent(stored: StoredEvent): CloudEvent<unknown> {
  const attributes: Record<string, unknown> = {
    ...stored.extensions,
    id: stored.id,
    source: stored.source,
    type: stored.type,
    specversion: stored.specversion,
  };
  for (const name of ['subject', 'time', 'datacontenttype', 'dataschema'] as const) {
    if (stored[name] !== undefined) attributes[name] = stored[name];
  }
  if (stored.data !== undefined) {
    if (stored.dataEncoding === 'base64') attributes.data_base64 = stored.data;
    else if (stored.dataEncoding === 'json') attributes.data = JSON.parse(stored.data) as unknown;
    else attributes.data = stored.data;
  }
  return new CloudEvent<unknown>(attributes as ConstructorParameters<typeof CloudEvent>[0]);
}

function hostAllowed(url: string, allowedHosts: readonly string[]): boolean {
  let host: string;
  try {
    const parsed = new URL(url);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return false;
    host = parsed.hostname.toLowerCase();
  } catch {
    return false;
  }
  if (allowedHosts.length === 0) return true;
  return allowedHosts.some(
    (suffix) => host === suffix.replace(/^\./, '') || host.endsWith(suffix.startsWith('.') ? suffix : `.${suffix}`),
  );
}

/**
 * Where a replay goes. The subscriber that failed (`knativeerrordest`) gets it directly, so other Triggers of
 * the type do not see it twice; without an allowed one, or when asked, it goes through the Broker (`K_SINK`),
 * which delivers it to every matching Trigger again (consumers drop duplicates by id).
 */
export function replayTarget(
  doc: DeadLetterDocument,
  via: ReplayVia,
  deps: Pick<ReplayDeps, 'sink' | 'allowedHosts' | 'brokerOnly'>,
): string {
  const original = doc.error.destination;
  const direct = via === 'subscriber' && !(deps.brokerOnly && deps.sink);
  if (direct && original && hostAllowed(original, deps.allowedHosts)) return original;
  if (deps.sink) return deps.sink;
  throw new DomainRefusalError(
    'no_replay_target',
    original
      ? `the original destination ${original} is not an allowed replay host and no K_SINK is configured`
      : 'the dead letter names no original destination and no K_SINK is configured',
  );
}

async function attempt(
  doc: DeadLetterDocument,
  via: ReplayVia,
  deps: ReplayDeps,
  ctx: HandlerContext,
): Promise<ReplayOutcome> {
  const now = deps.now ?? (() => new Date());
  const destination = replayTarget(doc, via, deps);
  const record: ReplayAttempt = { at: now(), to: destination };
  let failure: string | undefined;
  try {
    const result = await deps.send(destination, rebuildEvent(doc.event));
    record.status = result.status;
    if (deliveryVerdict(result.status) !== 'delivered') {
      failure = `the destination answered ${result.status}`;
    } else {
      // A subscriber called directly answers its reply event to us, not to the Broker: pass it on.
      const reply = destination === deps.sink ? undefined : replyEventOf(result);
      if (reply) {
        if (!deps.sink) failure = 'the subscriber replied with an event and no K_SINK is configured to forward it';
        else {
          const forwarded = await deps.send(deps.sink, reply);
          if (deliveryVerdict(forwarded.status) !== 'delivered')
            failure = `forwarding the reply event got ${forwarded.status}`;
        }
      }
    }
  } catch (error) {
    failure = error instanceof Error ? error.message : String(error);
  }
  if (failure !== undefined) {
    record.error = failure;
    await deps.repository.recordReplayFailure(doc._id, record);
    ctx.logger.warn(
      { deadLetter: { id: doc._id, destination, status: record.status }, error: failure },
      'replay failed',
    );
    return {
      id: doc._id,
      outcome: 'failed',
      destination,
      ...(record.status ? { status: record.status } : {}),
      error: failure,
    };
  }
  const marked = await deps.repository.markReplayed(doc._id, doc.deadLetterCount, record);
  ctx.logger.info({ deadLetter: { id: doc._id, destination, status: record.status, marked } }, 'replayed');
  return { id: doc._id, outcome: marked ? 'replayed' : 'superseded', destination, status: record.status };
}

/** Use case: replay one dead letter. A failed replay is a 502 (the record stays as it was, attempt noted). */
export async function replayDeadLetter(
  id: string,
  via: ReplayVia,
  deps: ReplayDeps,
  ctx: HandlerContext,
): Promise<ReplayOutcome> {
  const doc = await deps.repository.get(id);
  if (!doc) throw new NotFoundError(`no dead letter ${id}`);
  const outcome = await attempt(doc, via, deps, ctx);
  if (outcome.outcome === 'failed') {
    throw new AppError(502, 'replay_failed', `the replay to ${outcome.destination} failed: ${outcome.error}`, outcome);
  }
  return outcome;
}

/**
 * Use case: replay every dead letter that matches (pending by default): up to `limit` per call, newest first,
 * `concurrency` at a time. Call again while `more` is true; replayed records no longer match `pending`.
 */
export async function replayDeadLetters(
  filter: DeadLetterFilter,
  options: { via: ReplayVia; limit: number; concurrency: number },
  deps: ReplayDeps,
  ctx: HandlerContext,
): Promise<{ replayed: number; failed: number; more: boolean; results: ReplayOutcome[] }> {
  const docs: DeadLetterDocument[] = [];
  let cursor: string | undefined;
  let more = false;
  while (docs.length < options.limit) {
    const page = await deps.repository.list(filter, {
      limit: Math.min(500, options.limit - docs.length),
      ...(cursor ? { cursor } : {}),
    });
    docs.push(...page.items);
    if (!page.next) break;
    cursor = page.next;
    more = docs.length >= options.limit;
  }
  const results: ReplayOutcome[] = new Array(docs.length);
  let next = 0;
  const worker = async () => {
    while (next < docs.length) {
      const index = next++;
      const doc = docs[index]!;
      try {
        results[index] = await attempt(doc, options.via, deps, ctx);
      } catch (error) {
        // The store is down: stop here and let the caller retry the whole call.
        if (error instanceof AppError && error.status === 503) throw error;
        results[index] = {
          id: doc._id,
          outcome: 'failed',
          destination: '',
          error: error instanceof Error ? error.message : String(error),
        };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency, docs.length) }, worker));
  return {
    replayed: results.filter((r) => r.outcome === 'replayed').length,
    failed: results.filter((r) => r.outcome === 'failed').length,
    more,
    results,
  };
}
