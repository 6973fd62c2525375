import { CronExpressionParser } from 'cron-parser';
import type { Abort, ExecutionStatus, Retry, Rollout, Scheduling, StatusCounts } from './schema.js';

/**
 * The rollout arithmetic as pure functions of the job's stored state and a clock, so the scheduler and the
 * tests (with a test clock) compute the same thing.
 *
 * Rate: within one rate segment (since the job started or the rate last changed), the releases allowed by
 * `now` are `1 + floor(rate × minutes elapsed)`: never more than `rate` in any minute of the segment, and
 * spread evenly instead of a burst at the top of each minute (AWS: "the maximum number of things that will
 * be notified of a pending job, per minute").
 */
export interface RolloutState {
  /** Executions released so far: those with `seq < released`. */
  released: number;
  /** Releases known to have reached their executions; between it and `released` a crash may have cut in. */
  confirmed?: number;
  /** When the last range was claimed: a pass may still be notifying it until RELEASE_STALL_MS later. */
  claimedAt?: Date;
  /** The current rate per minute; absent: no limit. */
  rate?: number;
  /** Where the current rate segment began: its time, and the released and succeeded counts then. */
  segment: { at: Date; released: number; succeeded: number };
}

export function initialRolloutState(rollout: Rollout | undefined, now: Date): RolloutState {
  return { released: 0, segment: { at: now, released: 0, succeeded: 0 }, ...rateOf(rollout) };
}

function rateOf(rollout: Rollout | undefined): { rate?: number } {
  if (!rollout) return {};
  const base = rollout.exponentialRate?.baseRatePerMinute ?? rollout.maximumPerMinute;
  if (base === undefined) return {};
  return { rate: rollout.maximumPerMinute === undefined ? base : Math.min(base, rollout.maximumPerMinute) };
}

/**
 * How long a claimed range may stay unconfirmed before another pass takes it for a crash and notifies its
 * still-QUEUED executions again. Until then the claiming pass may simply still be at work (a second instance's
 * concurrent pass, or the same one notifying a large batch): repairing at once would notify devices twice.
 */
export const RELEASE_STALL_MS = 30_000;

/** Whether releases were claimed but not confirmed, and long enough ago that their pass must have died. */
export function releaseStalled(state: RolloutState, now: Date): boolean {
  if ((state.confirmed ?? 0) >= state.released) return false;
  // A job claimed before claimedAt was recorded: the pass that claimed it is long gone.
  if (state.claimedAt === undefined) return true;
  return now.getTime() - state.claimedAt.getTime() >= RELEASE_STALL_MS;
}

/** How many more executions may be released at `now` (Infinity without a rate). */
export function releaseBudget(state: RolloutState, now: Date): number {
  if (state.rate === undefined) return Number.POSITIVE_INFINITY;
  const minutes = Math.max(0, now.getTime() - state.segment.at.getTime()) / 60_000;
  const allowed = state.segment.released + 1 + Math.floor(state.rate * minutes + 1e-9);
  return Math.max(0, allowed - state.released);
}

/**
 * The exponential ramp: once enough devices were notified, or succeeded, since the last increase, the rate
 * is multiplied by the factor (rounded up, capped at maximumPerMinute) and a new segment starts now.
 */
export function rampedState(
  state: RolloutState,
  rollout: Rollout | undefined,
  succeeded: number,
  now: Date,
): RolloutState | undefined {
  const ramp = rollout?.exponentialRate;
  if (!ramp || state.rate === undefined) return undefined;
  const cap = rollout?.maximumPerMinute ?? Number.POSITIVE_INFINITY;
  if (state.rate >= cap) return undefined;
  const { numberOfNotifiedDevices: notified, numberOfSucceededDevices: succeededNeeded } = ramp.rateIncreaseCriteria;
  const byNotified = notified !== undefined && state.released - state.segment.released >= notified;
  const bySucceeded = succeededNeeded !== undefined && succeeded - state.segment.succeeded >= succeededNeeded;
  if (!byNotified && !bySucceeded) return undefined;
  return {
    ...state,
    rate: Math.min(cap, Math.ceil(state.rate * ramp.incrementFactor)),
    segment: { at: now, released: state.released, succeeded },
  };
}

/** Executions that ran to an outcome of the device's (or the timeout's): what abort percentages are of. */
export function executedCount(counts: StatusCounts): number {
  return counts.SUCCEEDED + counts.FAILED + counts.REJECTED + counts.TIMED_OUT;
}

export interface AbortVerdict {
  failureType: 'FAILED' | 'REJECTED' | 'TIMED_OUT' | 'ALL';
  failures: number;
  executed: number;
  thresholdPercentage: number;
}

/** The first abort criterion the counts meet, if any. */
export function abortVerdict(abort: Abort | undefined, counts: StatusCounts): AbortVerdict | undefined {
  if (!abort) return undefined;
  const executed = executedCount(counts);
  for (const criterion of abort.criteria) {
    if (executed < criterion.minNumberOfExecutedDevices) continue;
    const failures =
      criterion.failureType === 'ALL'
        ? counts.FAILED + counts.REJECTED + counts.TIMED_OUT
        : counts[criterion.failureType];
    if ((failures * 100) / executed >= criterion.thresholdPercentage) {
      return {
        failureType: criterion.failureType,
        failures,
        executed,
        thresholdPercentage: criterion.thresholdPercentage,
      };
    }
  }
  return undefined;
}

/** Whether a failed or timed-out attempt gets another one, given the retries it already had of each kind. */
export function shouldRetry(
  retry: Retry | undefined,
  status: ExecutionStatus,
  used: { FAILED?: number; TIMED_OUT?: number },
): boolean {
  if (!retry || (status !== 'FAILED' && status !== 'TIMED_OUT')) return false;
  const total = (used.FAILED ?? 0) + (used.TIMED_OUT ?? 0);
  return retry.criteria.some((criterion) =>
    criterion.failureType === 'ALL'
      ? total < criterion.numberOfRetries
      : criterion.failureType === status && (used[status] ?? 0) < criterion.numberOfRetries,
  );
}

/**
 * The maintenance window `now` falls in: its start, or undefined outside every window. Without windows the
 * whole time is one window (start undefined, `open` true).
 */
export function maintenanceWindow(scheduling: Scheduling | undefined, now: Date): { open: boolean; since?: Date } {
  const windows = scheduling?.maintenanceWindows ?? [];
  if (windows.length === 0) return { open: true };
  let since: Date | undefined;
  for (const window of windows) {
    // prev() is strictly before currentDate: a window starting exactly now counts as started.
    const start = CronExpressionParser.parse(window.startTime, { currentDate: new Date(now.getTime() + 1), tz: 'UTC' })
      .prev()
      .toDate();
    if (now.getTime() < start.getTime() + window.durationInMinutes * 60_000 && (!since || start < since)) since = start;
  }
  return since ? { open: true, since } : { open: false };
}

/** The stored counts with every status present. */
export function fullCounts(partial: Partial<StatusCounts>): StatusCounts {
  return {
    pending: partial.pending ?? 0,
    QUEUED: partial.QUEUED ?? 0,
    IN_PROGRESS: partial.IN_PROGRESS ?? 0,
    SUCCEEDED: partial.SUCCEEDED ?? 0,
    FAILED: partial.FAILED ?? 0,
    TIMED_OUT: partial.TIMED_OUT ?? 0,
    REJECTED: partial.REJECTED ?? 0,
    REMOVED: partial.REMOVED ?? 0,
    CANCELED: partial.CANCELED ?? 0,
  };
}
