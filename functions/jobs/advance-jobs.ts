import type { Ctx, JobDeps } from './deps.js';
import { notifyDevices, pendingMessages, pendingOfDevice, publishToDevices } from './device-messages.js';
import { abortJob, endJob, finishCleanup } from './end-job.js';
import { type ExecutionDocument, newExecutions } from './execution-repository.js';
import { forgetJobConfig } from './job-config.js';
import { activeIn, type JobDocument } from './job-repository.js';
import { recordOutcome } from './record-outcome.js';
import { abortVerdict, fullCounts, maintenanceWindow, rampedState, releaseBudget, releaseStalled } from './rollout.js';
import type { StatusCounts } from './schema.js';

/**
 * One pass of the scheduler over every live job (SCHEDULED, IN_PROGRESS, being deleted, or ended with its
 * cleanup owed), then over executions whose timeout passed. Each step is a compare-and-set on the job's
 * version, so any number of instances may run passes at once: of two that try the same step, one does it.
 * Returns whether a job is still live (the tick keeps going while one is).
 */
export async function advanceJobs(deps: JobDeps, ctx: Ctx): Promise<{ live: number }> {
  const live = await deps.jobs.live();
  for (const job of live) {
    try {
      await advanceJob(job, deps, ctx);
    } catch (error) {
      // One job's fault (a conflict, a store hiccup) must not stop the others; the next pass tries again.
      ctx.logger.warn({ err: error, jobId: job._id }, 'job not advanced in this pass');
    }
  }
  await sweepTimeouts(deps, ctx);
  return { live: live.length };
}

export async function advanceJob(job: JobDocument, deps: JobDeps, ctx: Ctx): Promise<void> {
  const now = deps.clock();
  if (job.cleanupPending && job.status !== 'DELETION_IN_PROGRESS') {
    await finishCleanup(job, deps, ctx);
    return;
  }
  if (job.status === 'DELETION_IN_PROGRESS') {
    await deps.executions.removeForJob(job._id);
    await deps.jobs.removeTimeline(job._id);
    await deps.jobs.remove(job._id);
    forgetJobConfig(job._id);
    ctx.logger.info({ jobId: job._id }, 'job deleted');
    return;
  }
  if (job.status === 'SCHEDULED') {
    const startTime = job.scheduling?.startTime ? Date.parse(job.scheduling.startTime) : 0;
    if (startTime > now.getTime()) return;
    const started = await deps.jobs.compareAndSet(job._id, job.version, {
      $set: {
        status: 'IN_PROGRESS',
        startedAt: now,
        lastUpdatedAt: now,
        'rolloutState.segment': { at: now, released: 0, succeeded: 0 },
      },
    });
    if (!started) return;
    await deps.jobs.record({ jobId: job._id, at: now, kind: 'started' });
    job = started;
  }
  if (job.status !== 'IN_PROGRESS') return;
  if (!job.targetsResolved) {
    const resolved = await resolveTargets(job, deps, ctx);
    if (!resolved) return;
    job = resolved;
  }
  if (job.scheduling?.endTime && Date.parse(job.scheduling.endTime) <= now.getTime() && !job.rolloutStopped) {
    await reachEndTime(job, deps, ctx);
    return;
  }
  const { counts, recounted: exact } = await reconciledCounts(job, deps);
  const verdict = abortVerdict(job.abort, counts);
  if (verdict) {
    await abortJob(job._id, verdict, deps, ctx);
    return;
  }
  job = (await release(job, counts.SUCCEEDED, deps, ctx)) ?? job;
  const ramped = rampedState(job.rolloutState, job.rollout, counts.SUCCEEDED, now);
  if (ramped) {
    // Field by field: `confirmed` moves without a version bump (confirmReleased), and a whole-object $set
    // of the state read at the pass's start could take it back.
    const next = await deps.jobs.compareAndSet(job._id, job.version, {
      $set: { 'rolloutState.rate': ramped.rate, 'rolloutState.segment': ramped.segment },
    });
    if (next) {
      await deps.jobs.record({ jobId: job._id, at: now, kind: 'rate_increased', details: { rate: ramped.rate } });
      ctx.logger.info({ jobId: job._id, rate: ramped.rate }, 'rollout rate increased');
    }
  }
  const finite = job.targetSelection === 'SNAPSHOT' || job.rolloutStopped;
  if (finite && mayBeDone(job, counts, exact) && !(await deps.executions.anyActive(job._id))) {
    await endJob(job._id, { status: 'COMPLETED', details: { counts } }, deps, ctx);
  }
}

/**
 * Whether the job may have no active execution left, before asking the executions (`anyActive` filters on a
 * field no unique index has, so mongo-java-server scans the collection for it, and every pass would): a recount
 * knows; between recounts, the final outcomes counted since reach the targets. A job whose seq has gaps (a device
 * that joined a continuous job in a race) never reaches them by counting: the next recount, within RECOUNT_MS, ends it.
 */
function mayBeDone(job: JobDocument, counts: StatusCounts, recounted: boolean): boolean {
  if (recounted) return activeIn(counts) === 0;
  const ended =
    counts.SUCCEEDED + counts.FAILED + counts.TIMED_OUT + counts.REJECTED + counts.REMOVED + counts.CANCELED;
  return ended >= job.targetCount;
}

/** When this process last recounted a job's executions (an aggregation over all of them). */
const recounted = new Map<string, number>();
const RECOUNT_MS = 5_000;

/**
 * The job's counts: its `$inc` counters (kept by every outcome) between recounts, and every RECOUNT_MS (and
 * whenever the counters say nothing is active) a recount from the executions that repairs them, so a crash
 * between an outcome and its `$inc` costs accuracy for a few seconds, not forever.
 */
async function reconciledCounts(
  job: JobDocument,
  deps: JobDeps,
): Promise<{ counts: StatusCounts; recounted: boolean }> {
  const now = deps.clock().getTime();
  const last = recounted.get(job._id);
  if (last !== undefined && now - last < RECOUNT_MS && now >= last)
    return { counts: fullCounts(job.counts), recounted: false };
  if (recounted.size > 10_000) recounted.clear();
  recounted.set(job._id, now);
  const counts = fullCounts(await deps.executions.counts(job._id));
  await deps.jobs.setCounts(job._id, counts);
  return { counts, recounted: true };
}

/**
 * Turns the targets into QUEUED (unreleased) executions, page by page in device-id order; then marks the job
 * resolved with its count. `seq` is the position in that order, so two instances resolving at once (or a pass
 * resuming after a crash) write the same documents: the second insert of each is a duplicate, skipped.
 */
async function resolveTargets(job: JobDocument, deps: JobDeps, ctx: Ctx): Promise<JobDocument | undefined> {
  let total = 0;
  let created = 0;
  for await (const page of deps.targets.pages(job.targets, deps.settings.batchSize)) {
    created += await deps.executions.insertMany(newExecutions(job._id, page, total, deps.clock()));
    total += page.length;
  }
  const resolved = await deps.jobs.compareAndSet(job._id, job.version, {
    $set: { targetsResolved: true, targetCount: total, lastUpdatedAt: deps.clock() },
  });
  if (resolved) {
    await deps.jobs.record({ jobId: job._id, at: deps.clock(), kind: 'targets_resolved', details: { targets: total } });
    ctx.logger.info({ jobId: job._id, executions: total, created }, 'job targets resolved');
  }
  return resolved;
}

/**
 * Releases what the rollout rate allows now (all at once without a rate, a batch per pass), inside a
 * maintenance window only. The range is claimed on the job first (compare-and-set of `released`), then its
 * executions are marked released and their devices notified; a crash in between is healed from `confirmed` by
 * the first pass after RELEASE_STALL_MS (not sooner: another instance's pass may still be notifying it).
 */
async function release(job: JobDocument, succeeded: number, deps: JobDeps, ctx: Ctx): Promise<JobDocument | undefined> {
  const now = deps.clock();
  let state = job.rolloutState;
  if (releaseStalled(state, now)) {
    await releaseRange(job._id, state.confirmed ?? 0, state.released, deps, ctx, { repair: true });
  }
  if (job.rolloutStopped) return undefined;
  const window = maintenanceWindow(job.scheduling, now);
  if (!window.open) return undefined;
  let current = job;
  if (window.since && state.segment.at < window.since) {
    // A new window: the rate starts over from now rather than releasing what the closed hours would have allowed.
    state = { ...state, segment: { at: now, released: state.released, succeeded } };
  }
  const count = Math.min(releaseBudget(state, now), job.targetCount - state.released, deps.settings.batchSize);
  if (count <= 0) {
    if (state !== job.rolloutState) {
      current =
        (await deps.jobs.compareAndSet(job._id, job.version, { $set: { 'rolloutState.segment': state.segment } })) ??
        job;
    }
    return current;
  }
  const from = state.released;
  const claimed = await deps.jobs.compareAndSet(job._id, job.version, {
    $set: {
      'rolloutState.released': from + count,
      'rolloutState.segment': state.segment,
      'rolloutState.claimedAt': now,
      lastUpdatedAt: now,
    },
  });
  if (!claimed) return undefined;
  await releaseRange(job._id, from, from + count, deps, ctx);
  return claimed;
}

/**
 * Marks the range released and notifies its devices, then confirms it. A pass that failed in between (a store or
 * the sink away) leaves the range unconfirmed: the repair notifies every still-QUEUED execution of it again, as
 * a device may not have heard (at least once; a device that did sees the same versionNumber twice).
 */
async function releaseRange(
  jobId: string,
  from: number,
  to: number,
  deps: JobDeps,
  ctx: Ctx,
  options: { repair?: boolean } = {},
): Promise<void> {
  const fresh = await deps.executions.release(jobId, from, to, deps.clock());
  const deviceIds = options.repair ? await deps.executions.queuedInRange(jobId, from, to) : fresh;
  if (deviceIds.length > 0) await notifyDevices(deviceIds, deps, ctx);
  await deps.jobs.confirmReleased(jobId, to);
}

/** `scheduling.endTime` passed: stop the rollout (what was not released is canceled), or cancel the job. */
async function reachEndTime(job: JobDocument, deps: JobDeps, ctx: Ctx): Promise<void> {
  const behavior = job.scheduling?.endBehavior ?? 'STOP_ROLLOUT';
  if (behavior !== 'STOP_ROLLOUT') {
    await endJob(
      job._id,
      { status: 'CANCELED', force: behavior === 'FORCE_CANCEL', reasonCode: 'end_time' },
      deps,
      ctx,
    );
    return;
  }
  const stopped = await deps.jobs.compareAndSet(job._id, job.version, { $set: { rolloutStopped: true } });
  if (!stopped) return;
  const canceled = await deps.executions.cancelUnreleased(job._id, deps.clock());
  if (canceled > 0) await deps.jobs.incrementCounts(job._id, { CANCELED: canceled });
  await deps.jobs.record({ jobId: job._id, at: deps.clock(), kind: 'rollout_stopped', details: { canceled } });
}

/** When this process last swept timeouts, per set of stores (a test may run two instances in one process). */
const swept = new WeakMap<JobDeps, number>();
const SWEEP_MS = 1_000;

/**
 * IN_PROGRESS executions past their timeout become TIMED_OUT (or their next attempt, with retries). Timeouts are
 * whole minutes, and the query scans the executions on mongo-java-server (no unique index can answer it): at most
 * once a second of the clock, however often passes run (bench:jobs runs one every 100 ms).
 */
async function sweepTimeouts(deps: JobDeps, ctx: Ctx): Promise<void> {
  const now = deps.clock().getTime();
  const last = swept.get(deps);
  if (last !== undefined && now - last < SWEEP_MS && now >= last) return;
  swept.set(deps, now);
  const expired = await deps.executions.timedOut(deps.clock(), deps.settings.batchSize);
  for (const execution of expired) {
    const outcome = await recordOutcome(execution, 'TIMED_OUT', execution.statusDetails, deps, ctx);
    if (outcome.execution) await tellDevice(outcome.execution, deps, ctx);
  }
}

async function tellDevice(execution: ExecutionDocument, deps: JobDeps, ctx: Ctx): Promise<void> {
  const pending = await pendingOfDevice(execution.deviceId, deps);
  await publishToDevices(await pendingMessages(execution.deviceId, pending, deps), deps, ctx);
}
