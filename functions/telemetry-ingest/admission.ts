import { randomUUID } from 'node:crypto';
import type { RedisClient, RedisHandle } from '../../shared/redis.js';
import { groupsByNode, isRedisUnavailable, withRedis } from '../../shared/redis.js';
import { ADMIT, COMPLETE, REFUND, RELEASE } from './admission-scripts.js';
import { type Mark, retryInBackground } from './mark-releases.js';
import { type PresenceRepository, type StatusChanges, statusChanges } from './presence-repository.js';
import type { RedisKeys } from './redis-keys.js';

/** The rate alone (telemetry: MongoDB's unique `_id` is its dedup, ingest-telemetry.ts). */
export type RateAdmission =
  | { kind: 'admitted' }
  /** Over the device's rate; `notify` is true for at most one refusal per notice interval. */
  | { kind: 'limited'; retryAfterMs: number; notify: boolean };

/** Dedup marks and the rate (state reports, whose merge is not idempotent). */
export type Admission =
  | RateAdmission
  | { kind: 'duplicate' }
  /** Another delivery of the same event is being processed right now. */
  | { kind: 'in_progress' };

export interface AdmissionPolicy {
  ratePerSecond: number;
  burst: number;
  noticeIntervalMs: number;
  /** How long a state report's event id is remembered (telemetry's dedup is its stored samples' `_id`). */
  dedupTtlSeconds: number;
  /** How long a state report may stay "in progress" before another delivery may take it over. */
  pendingTtlSeconds: number;
  /** The presence hashes' TTL (presence-repository.ts): `complete` marks the devices seen. */
  presenceTtlSeconds: number;
}

/** One device message at the gate: the device whose bucket it draws from, and its event id. */
export interface GateItem {
  deviceId: string;
  eventId: string;
  /**
   * When the message entered the system (the bridge's receive time, the HTTP ingest's): the device's rate is
   * judged at that time, not when the message happens to be processed. A backlog (the Broker's retries
   * during an outage, the router's replay after a crash) was within the rate when it came and stays so.
   */
  receivedAt?: Date;
}

/** Telemetry's admission of a batch: each item's, in order, and the devices marked seen that a live hub watches. */
export interface RateAdmissions {
  admissions: RateAdmission[];
  watched: Set<string>;
}

export interface AdmissionGate {
  /**
   * Telemetry: the rate alone, no dedup marks, and presence: each device of `seen` is marked seen at its newest
   * message's receive time in the same call, whatever becomes of its messages (one round trip for
   * the batch, per master on a Cluster; a status change then feeds the fleet index, a second one, rare). Answers
   * which of those devices a live hub watches, as read in that call (before the insert: see live-feed.ts for why a
   * sample stored after a hub set its mark is still published). A redelivery draws again; the caller gives back
   * what stored messages drew (`refund`).
   */
  admit(items: readonly GateItem[], now: number, seen?: ReadonlySet<string>): Promise<RateAdmissions>;
  /**
   * State reports: dedup marks and the rate, in the order of `items`. An admitted item holds an in-progress mark
   * until `complete({ marked: true })`, `release` or `forget`.
   */
  admitOnce(items: readonly GateItem[], now: number): Promise<Admission[]>;
  /**
   * State reports, whose effects are durable: mark each device seen at its newest message's receive time
   * (presence), and with `marked` remember the ids for the dedup window. Answers the items' devices a live hub
   * watches (the presence hash's `watched` field). One round trip serves all three (per master on a Cluster); a
   * status change then feeds the fleet index (a second one, rare: a device's first message).
   */
  complete(items: readonly GateItem[], options?: { marked: boolean }): Promise<Set<string>>;
  /**
   * Gives back one token per item to its device's bucket (items `admit` admitted): the attempt failed (5xx,
   * retried) or the message was stored already, so it costs the device nothing.
   */
  refund(items: readonly GateItem[]): Promise<void>;
  /**
   * A marked attempt failed (a store down: 5xx, retried): forget the events and give back what their admission
   * took from their devices' rates, as if this attempt had never come, so that the redeliveries are
   * processed again.
   */
  release(items: readonly GateItem[]): Promise<void>;
  /** Marked events refused for good (4xx): forget them, so that a redelivery is judged afresh; the rate stays spent. */
  forget(items: readonly GateItem[]): Promise<void>;
}

/** Shared by every admitted item (nothing changes an admission). */
const ADMITTED: Admission = Object.freeze({ kind: 'admitted' });

/**
 * The gate on Redis. An attempt that fails because Redis is unreachable (a failover, a restart) cannot
 * release its marks (state reports) then; the release is retried in the background until Redis answers, so the Broker's
 * redelivery is processed as soon as the store is back instead of being refused as in progress (409)
 * until the marks expire (`pendingTtlSeconds`).
 */
export function createAdmissionGate(
  redis: RedisHandle,
  keys: RedisKeys,
  policy: AdmissionPolicy,
  presence: Pick<PresenceRepository, 'index'>,
): AdmissionGate {
  // One script call per master on a Cluster (a device's dedup marks and hash share its `{deviceId}` slot).
  const groups = <T>(client: RedisClient, items: readonly T[], deviceOf: (item: T) => string) =>
    groupsByNode(client, items, (item) => keys.presence(deviceOf(item)));
  const dedupKeys = (items: readonly GateItem[]) => items.map((item) => keys.dedup(item.deviceId, item.eventId));
  // The token of each mark this process holds: admitted, neither completed nor released yet.
  const tokens = new Map<string, string>();
  const releaseNow = (marks: readonly Mark[], refund: boolean) =>
    withRedis(async () => {
      const client = await redis.client();
      await Promise.all(
        groups(client, marks, (mark) => mark.deviceId).map((group) =>
          RELEASE.run(
            client,
            [...group.map((mark) => mark.key), ...(refund ? group.map((mark) => mark.bucket) : [])],
            [policy.burst, refund ? 1 : 0, ...group.map((mark) => mark.token)],
          ),
        ),
      );
    });
  const retries = {
    refund: retryInBackground((marks) => releaseNow(marks, true)),
    keep: retryInBackground((marks) => releaseNow(marks, false)),
  };
  /** Takes this process's marks of `items` (each released once) and releases them, later if Redis is down. */
  async function releaseMarks(items: readonly GateItem[], refund: boolean): Promise<void> {
    const marks: Mark[] = [];
    for (const item of items) {
      const key = keys.dedup(item.deviceId, item.eventId);
      const token = tokens.get(key);
      tokens.delete(key);
      if (token !== undefined)
        marks.push({ deviceId: item.deviceId, key, token, bucket: keys.presence(item.deviceId) });
    }
    if (marks.length === 0) return;
    try {
      await releaseNow(marks, refund);
    } catch (error) {
      if (!isRedisUnavailable(error)) throw error;
      (refund ? retries.refund : retries.keep).add(marks);
    }
  }

  async function admitGroup(
    client: RedisClient,
    group: GateItem[],
    now: number,
    marked: boolean,
    seen: ReadonlySet<string> | undefined,
  ): Promise<GroupAnswer> {
    // The items by device, each device's in their order: ADMIT takes one argument per device (its items' receive
    // times) and answers in that order.
    const byDevice = new Map<string, { positions: number[]; times: string }>();
    group.forEach((item, position) => {
      const at = item.receivedAt?.getTime();
      const time = String(at !== undefined && Number.isFinite(at) ? at : now);
      const entry = byDevice.get(item.deviceId);
      if (entry) {
        entry.positions.push(position);
        entry.times += `,${time}`;
      } else byDevice.set(item.deviceId, { positions: [position], times: time });
    });
    const devices = [...byDevice.keys()];
    const entries = [...byDevice.values()];
    const token = marked ? `pending:${randomUUID()}` : '';
    // With marks (state reports), the items' dedup marks come first, in the same order.
    const ordered = marked ? entries.flatMap((entry) => entry.positions.map((position) => group[position]!)) : [];
    const marks = dedupKeys(ordered);
    let flags = '';
    if (seen) for (const deviceId of devices) flags += seen.has(deviceId) ? '1' : '0';
    let answer: [string, number[], number[], (number | string)[]];
    try {
      answer = (await ADMIT.run(
        client,
        [...marks, ...devices.map((deviceId) => keys.presence(deviceId))],
        [
          now,
          policy.ratePerSecond,
          policy.burst,
          policy.noticeIntervalMs,
          marked ? policy.pendingTtlSeconds : 0,
          token,
          seen ? policy.presenceTtlSeconds : 0,
          flags,
          ...entries.map((entry) => entry.times),
        ],
      )) as typeof answer;
    } catch (error) {
      // The script may have run and its answer been lost with the connection (a master killed mid-call, whose
      // writes live on in the replica that takes over): its marks would hold the redelivery off as in progress
      // (409) until they expire. Release whatever this call marked, by its token, once Redis answers again.
      // Telemetry holds no marks; a lost answer may have drawn its tokens, which stay spent (the bucket refills).
      if (marked && isRedisUnavailable(error)) {
        retries.refund.add(
          ordered.map((item, i) => ({
            deviceId: item.deviceId,
            key: marks[i]!,
            token,
            bucket: keys.presence(item.deviceId),
          })),
        );
      }
      throw error;
    }
    const [kinds, waits, watched, changed] = answer;
    const admissions: Admission[] = new Array(group.length);
    let letter = 0;
    let w = 0;
    for (const entry of entries) {
      for (const position of entry.positions) {
        const kind = kinds[letter];
        let admission: Admission;
        if (kind === 'a') {
          if (marked) tokens.set(marks[letter]!, token);
          admission = ADMITTED;
        } else if (kind === 'd') admission = { kind: 'duplicate' };
        else if (kind === 'p') admission = { kind: 'in_progress' };
        else admission = { kind: 'limited', retryAfterMs: Number(waits[w++]), notify: kind === 'L' };
        admissions[position] = admission;
        letter += 1;
      }
    }
    return {
      admissions,
      watched: watched.map((position) => devices[position - 1]!),
      changes: statusChanges(changed, devices),
    };
  }

  const admitAll = (items: readonly GateItem[], now: number, marked: boolean, seen?: ReadonlySet<string>) =>
    withRedis(async () => {
      const client = await redis.client();
      const positions = groups(
        client,
        items.map((_, index) => index),
        (index) => items[index]!.deviceId,
      );
      const answers = await Promise.all(
        positions.map((group) =>
          admitGroup(
            client,
            group.map((i) => items[i]!),
            now,
            marked,
            seen,
          ),
        ),
      );
      // Back into the order of `items`: a group keeps its items' order.
      const out: Admission[] = new Array(items.length);
      const watched = new Set<string>();
      const changes: StatusChanges = [];
      positions.forEach((group, g) => {
        const answer = answers[g]!;
        group.forEach((index, i) => {
          out[index] = answer.admissions[i]!;
        });
        for (const deviceId of answer.watched) watched.add(deviceId);
        for (const change of answer.changes) changes.push(change);
      });
      // A status change (rare: a device's first message, or its first after a disconnect) feeds the fleet index.
      await presence.index(changes);
      return { admissions: out, watched };
    });

  return {
    admit: (items, now, seen) => admitAll(items, now, false, seen) as Promise<RateAdmissions>,
    admitOnce: async (items, now) => (await admitAll(items, now, true)).admissions,
    complete: (items, options) =>
      withRedis(async () => {
        const marked = options?.marked === true;
        const client = await redis.client();
        const watched = new Set<string>();
        const changes: StatusChanges = [];
        await Promise.all(
          groups(client, items, (item) => item.deviceId).map(async (group) => {
            const seen = new Map<string, number>();
            for (const item of group) {
              const at = item.receivedAt?.getTime() ?? Date.now();
              if (!(seen.get(item.deviceId)! >= at)) seen.set(item.deviceId, at);
            }
            const devices = [...seen.keys()];
            const [positions, changed] = (await COMPLETE.run(
              client,
              [...(marked ? dedupKeys(group) : []), ...devices.map((deviceId) => keys.presence(deviceId))],
              [policy.dedupTtlSeconds, marked ? group.length : 0, policy.presenceTtlSeconds, ...seen.values()],
            )) as [number[], (number | string)[]];
            for (const position of positions) watched.add(devices[position - 1]!);
            changes.push(...statusChanges(changed, devices));
          }),
        );
        // Only now: if marking them done failed, the release that follows still knows the tokens.
        if (marked) for (const key of dedupKeys(items)) tokens.delete(key);
        await presence.index(changes);
        return watched;
      }),
    refund: (items) =>
      withRedis(async () => {
        if (items.length === 0) return;
        const counts = new Map<string, number>();
        for (const item of items) {
          const bucket = keys.presence(item.deviceId);
          counts.set(bucket, (counts.get(bucket) ?? 0) + 1);
        }
        const client = await redis.client();
        await Promise.all(
          groupsByNode(client, [...counts], ([bucket]) => bucket).map((group) =>
            REFUND.run(
              client,
              group.map(([bucket]) => bucket),
              [policy.burst, ...group.map(([, count]) => count)],
            ),
          ),
        );
      }),
    release: (items) => releaseMarks(items, true),
    forget: (items) => releaseMarks(items, false),
  };
}

/** One master's part of an admission: its items' answers, its watched devices, its status changes. */
interface GroupAnswer {
  admissions: Admission[];
  watched: string[];
  changes: StatusChanges;
}
