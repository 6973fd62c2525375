import type { Db } from 'mongodb';
import { z } from 'zod';
import type { CloudEvent } from '../shared/cloudevents.js';
import type { Emitter } from '../shared/emitter.js';
import { DomainRefusalError } from '../shared/errors.js';
import type { HandlerContext } from '../shared/function-app.js';
import { hasPendingWork, type PendingWork, pendingWorkSchema } from '../shared/pending-work.js';

/** A PingSource tick (CloudEvents type of Knative's PingSource) with its task and the task's pending work. */
export const PING_TYPE = 'dev.knative.sources.ping';
export const tickDataSchema = z.looseObject({ task: z.string().min(1).max(64), pending: pendingWorkSchema });

export interface GateDeps {
  db(): Promise<Db>;
  emitter: Emitter;
  /** The collections a query may read. */
  collections: ReadonlySet<string>;
  clock(): Date;
  /** Counts each verdict per task (metrics). */
  count(task: string, verdict: Verdict): void;
}

export type Verdict = 'forwarded' | 'skipped' | 'forwarded_unchecked';

/**
 * One tick: when its task has pending work, the same event (id, source, time, extensions, data without the
 * queries) goes on to the Broker, whose Trigger wakes the function; otherwise it stops here and the function
 * stays at zero. When MongoDB cannot answer, the tick goes on unchecked: a tick too many wakes a function for a
 * minute, a tick lost leaves its work waiting for the next.
 */
export async function admitTick(
  event: CloudEvent<unknown>,
  data: z.infer<typeof tickDataSchema>,
  deps: GateDeps,
  ctx: HandlerContext,
): Promise<Verdict> {
  const refused = data.pending.map((q) => q.collection).find((name) => !deps.collections.has(name));
  if (refused)
    throw new DomainRefusalError('collection_not_allowed', `the tick gate may not read ${refused}`, {
      allowed: [...deps.collections],
    });
  const verdict = await check(data.pending, deps, ctx);
  if (verdict !== 'skipped') await forward(event, data, deps);
  deps.count(data.task, verdict);
  ctx.logger.debug({ task: data.task, verdict }, 'tick');
  return verdict;
}

async function check(work: PendingWork, deps: GateDeps, ctx: HandlerContext): Promise<Verdict> {
  try {
    return (await hasPendingWork(work, await deps.db(), deps.clock())) ? 'forwarded' : 'skipped';
  } catch (error) {
    ctx.logger.warn({ err: error }, 'pending work unknown (MongoDB); the tick goes on');
    return 'forwarded_unchecked';
  }
}

async function forward(event: CloudEvent<unknown>, data: z.infer<typeof tickDataSchema>, deps: GateDeps) {
  const { pending: _queries, ...rest } = data;
  const extensions: Record<string, string> = {};
  for (const [name, value] of Object.entries(event)) {
    if (!STANDARD.has(name) && (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean'))
      extensions[name] = String(value);
  }
  await deps.emitter.emit({
    type: event.type,
    id: event.id,
    source: event.source,
    ...(event.time ? { time: event.time } : {}),
    ...(event.subject ? { subject: event.subject } : {}),
    data: rest,
    extensions,
  });
}

const STANDARD = new Set([
  'specversion',
  'id',
  'source',
  'type',
  'time',
  'subject',
  'datacontenttype',
  'dataschema',
  'data',
  'data_base64',
]);
