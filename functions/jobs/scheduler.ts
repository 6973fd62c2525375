import type { Collection } from 'mongodb';
import { JOBS_COLLECTION } from '../../shared/jobs.js';
import { isDuplicateKey, type MongoHandle, withMongo } from '../../shared/mongo.js';
import type { PendingWork } from '../../shared/pending-work.js';
import { advanceJobs } from './advance-jobs.js';
import type { Ctx, JobDeps } from './deps.js';

/** The PingSource's type and `kiottask` (knative/jobs/ping-source.yaml); a chained tick has the same. */
export const TICK_TYPE = 'dev.knative.sources.ping';
export const TICK_TASK = 'jobs-tick';

/**
 * What the tick has to do, as the tick gate checks it before a PingSource tick may wake jobs
 * (knative/jobs/ping-source.yaml carries it; a test compares): a live job (job-repository.ts `anyLive`).
 */
export const TICK_PENDING_WORK: PendingWork = [
  { collection: JOBS_COLLECTION, match: { status: { $in: ['SCHEDULED', 'IN_PROGRESS', 'DELETION_IN_PROGRESS'] } } },
  { collection: JOBS_COLLECTION, match: { cleanupPending: true } },
];

/**
 * What drives rollouts, timeouts and schedules when no device event does.
 *
 * On Knative a PingSource ticks rarely (every 10 minutes), so an idle service stays at zero most of the hour:
 * an idle tick costs one indexed `findOne` and answers. While a job is live, the tick that found it holds a
 * lease (one holder across all instances) and runs passes for `holdMs`; before it answers it sends the next
 * tick to the Broker itself (shaped as the PingSource's, so the one Trigger takes both), so the chain lasts exactly as long as some job is live, at
 * any rate the job needs, and ends by itself. A tick that finds the lease held answers at once: chains never
 * multiply. Locally (and in tests) an in-process timer runs passes instead (`startTimer`).
 */
export interface Scheduler {
  /** One pass now (skipped while one runs in this process). */
  pass(ctx: Ctx): Promise<{ live: number }>;
  /** A PingSource or chained tick. */
  onTick(ctx: Ctx): Promise<void>;
  startTimer(intervalMs: number, ctx: Ctx): () => void;
}

interface Lease {
  _id: string;
  owner: string;
  until: Date;
}

export function createScheduler(
  deps: JobDeps,
  mongo: MongoHandle,
  options: { holdMs: number; passIntervalMs: number; owner: string },
): Scheduler {
  let running: Promise<{ live: number }> | undefined;
  const leases = async (): Promise<Collection<Lease>> => (await mongo.db()).collection<Lease>('jobs_scheduler');

  async function acquire(): Promise<boolean> {
    const now = deps.clock();
    try {
      const lease = await withMongo(async () =>
        (await leases()).findOneAndUpdate(
          { _id: 'tick', $or: [{ until: { $lt: now } }, { owner: options.owner }] },
          { $set: { owner: options.owner, until: new Date(now.getTime() + options.holdMs + 10_000) } },
          { upsert: true, returnDocument: 'after' },
        ),
      );
      return lease?.owner === options.owner;
    } catch (error) {
      // The lease document exists and another owner holds it: the upsert's insert collides.
      if (isDuplicateKey(error)) return false;
      throw error;
    }
  }

  async function releaseLease(): Promise<void> {
    await withMongo(async () => (await leases()).deleteOne({ _id: 'tick', owner: options.owner }));
  }

  const scheduler: Scheduler = {
    pass(ctx) {
      running ??= advanceJobs(deps, ctx).finally(() => {
        running = undefined;
      });
      return running;
    },
    async onTick(ctx) {
      if (!(await deps.jobs.anyLive())) return;
      if (!(await acquire())) return;
      let live = 1;
      try {
        const until = Date.now() + options.holdMs;
        while (live > 0 && Date.now() < until) {
          live = (await scheduler.pass(ctx)).live;
          if (live > 0) await new Promise((resolve) => setTimeout(resolve, options.passIntervalMs));
        }
      } finally {
        await releaseLease().catch(() => undefined);
      }
      if (live > 0)
        await deps.emitter.emit({ type: TICK_TYPE, data: { task: TICK_TASK }, extensions: { kiottask: TICK_TASK } });
    },
    startTimer(intervalMs, ctx) {
      const timer = setInterval(() => {
        scheduler.pass(ctx).catch((error: unknown) => ctx.logger.warn({ err: error }, 'scheduler pass failed'));
      }, intervalMs);
      timer.unref();
      return () => clearInterval(timer);
    },
  };
  return scheduler;
}
