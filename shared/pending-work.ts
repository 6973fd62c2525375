import type { Db, Document, Filter } from 'mongodb';
import { z } from 'zod';

/**
 * Pending work: what a scheduled task has to do, said as read-only existence queries on MongoDB. A PingSource
 * tick goes to the tick gate (tick-gate/), which runs its task's queries and lets the tick on to the Broker, and
 * so wake the function, only when one finds a document: an idle fleet's ticks stop at the gate and every
 * function stays at zero. The task owns its queries (each exports them, e.g. command-dispatch's
 * `SWEEP_PENDING_WORK`); its PingSource carries them in `data.pending` (a test keeps the two equal).
 *
 * One query: documents of `collection` that match `match` (equality or `$in` on plain fields) and, at most one
 * of: `due` — `field` ≤ now − `graceSeconds` (a deadline passed, a sample aged out); `since` — `field` ≥ the
 * `mark` document's field − `lookbackSeconds` (something arrived since the task last ran; no mark: due).
 */
const field = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/, 'a plain field path');
const collection = z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]{0,119}$/, 'a collection name');
const scalar = z.union([z.string().max(256), z.number(), z.boolean()]);
const seconds = z
  .number()
  .int()
  .min(0)
  .max(400 * 86_400);

export const pendingQuerySchema = z
  .strictObject({
    collection,
    match: z.record(field, z.union([scalar, z.strictObject({ $in: z.array(scalar).min(1).max(32) })])).optional(),
    due: z.strictObject({ field, graceSeconds: seconds.optional() }).optional(),
    since: z
      .strictObject({
        field,
        mark: z.strictObject({ collection, id: z.string().min(1).max(256), field }),
        lookbackSeconds: seconds.optional(),
      })
      .optional(),
  })
  .refine((query) => !(query.due && query.since), 'a query has `due` or `since`, not both');
export const pendingWorkSchema = z.array(pendingQuerySchema).min(1).max(16);

export type PendingQuery = z.infer<typeof pendingQuerySchema>;
export type PendingWork = PendingQuery[];

/** The MongoDB filter of one query at `now`; undefined when its mark says it is due without looking. */
export async function filterOf(query: PendingQuery, db: Db, now: Date): Promise<Filter<Document> | undefined> {
  const filter: Filter<Document> = { ...query.match };
  if (query.due) filter[query.due.field] = { $lte: new Date(now.getTime() - (query.due.graceSeconds ?? 0) * 1000) };
  if (query.since) {
    const { mark } = query.since;
    const doc = await db
      .collection(mark.collection)
      .findOne({ _id: mark.id as never }, { projection: { [mark.field]: 1 } });
    const at = valueAt(doc, mark.field);
    if (!(at instanceof Date)) return undefined;
    filter[query.since.field] = { $gte: new Date(at.getTime() - (query.since.lookbackSeconds ?? 0) * 1000) };
  }
  return filter;
}

/** Whether any query finds a document: one indexed `findOne` each, stopping at the first that does. */
export async function hasPendingWork(work: PendingWork, db: Db, now: Date): Promise<boolean> {
  for (const query of work) {
    const filter = await filterOf(query, db, now);
    if (!filter) return true;
    if ((await db.collection(query.collection).findOne(filter, { projection: { _id: 1 } })) !== null) return true;
  }
  return false;
}

function valueAt(doc: Document | null, path: string): unknown {
  let value: unknown = doc;
  for (const part of path.split('.')) value = (value as Record<string, unknown> | null | undefined)?.[part];
  return value;
}
