import type { DeviceDirectory, DeviceView, TelemetrySchema } from '../../shared/devices.js';
import type { AppError } from '../../shared/errors.js';
import type { HandlerContext } from '../../shared/function-app.js';
import type { AdmissionGate } from './admission.js';
import { type DeviceMessage, type NoticeDeps, notifyDevice } from './device-steps.js';
import { type AlertDeps, type AlertSample, evaluateAlertRules } from './evaluate-alerts.js';
import type { LiveFeed } from './live-feed.js';
import { DisabledDeviceError, isRejection, RateLimitRefusal, UnknownDeviceError } from './refusals.js';
import { type SampleDocument, sampleId } from './telemetry-repository.js';
import { type ValidationPolicy, type ValidSample, validateTelemetry } from './validate-telemetry.js';

export interface TelemetryMessage extends DeviceMessage {
  /** The device's JSON payload, unparsed by any schema yet. */
  payload: unknown;
}

export interface IngestTelemetryDeps extends NoticeDeps, AlertDeps {
  admission: AdmissionGate;
  devices: DeviceDirectory;
  samples: {
    /**
     * The group commit in front of the `telemetry` collection: resolves once MongoDB acknowledged, with the
     * positions of the documents it held already (a duplicate `_id`).
     */
    store(docs: SampleDocument[]): Promise<ReadonlySet<number>>;
    /** Which of the ids are stored (one query; only for messages over their rate). */
    existing(ids: readonly string[]): Promise<Set<string>>;
  };
  /** Live views hear of stored samples (best effort, never awaited). */
  live?: Pick<LiveFeed, 'stored' | 'epoch'>;
  policy: ValidationPolicy;
  now(): number;
}

export type IngestOutcome = { outcome: 'stored'; samples: number } | { outcome: 'duplicate' };

/** What became of one message of a batch: stored, a duplicate of a stored one, or refused for good (4xx). */
export type ItemOutcome = IngestOutcome | { outcome: 'refused'; error: AppError };

/**
 * The outcomes of stored messages of up to 16 samples, and of a duplicate: one object each for the process rather
 * than one per message (issue 12: the storage step's garbage collection). Nothing writes to an outcome.
 */
const STORED: readonly IngestOutcome[] = Array.from({ length: 17 }, (_, samples) =>
  Object.freeze({ outcome: 'stored' as const, samples }),
);
const DUPLICATE: IngestOutcome = Object.freeze({ outcome: 'duplicate' as const });
const storedOutcome = (samples: number): IngestOutcome => STORED[samples] ?? { outcome: 'stored', samples };

interface Checked {
  /** The message's position in the call's `messages`. */
  index: number;
  message: TelemetryMessage;
  device: DeviceView;
  /**
   * The message's samples as stored, one per valid sample in order; alert evaluation reads them too (ts, metrics),
   * so the validated samples die with the check rather than living through the insert (issue 12's garbage).
   */
  docs: SampleDocument[];
}

/**
 * Telemetry messages from devices (a batch event of the bridge, a single event, an HTTP ingest), with work
 * sized by the batch rather than by the message: one round trip to Redis for every message (per master on a
 * Cluster) that judges the rate and marks the devices seen (presence), one `insertMany` (through the group commit,
 * which also merges concurrent batches), alert evaluation per device over its samples in event-time order.
 *
 * Presence says the device was heard from: every registered device of the batch is marked seen at its newest
 * message's receive time in the admission call, before the insert, whatever becomes of its messages (over the
 * rate, invalid, disabled, or the insert failing: they arrived all the same). A device that is not registered is
 * not marked (stray ids would fill Redis), so the devices are looked up first (the directory's cache, mostly).
 *
 * Dedup is the insert: every sample has a deterministic `_id` (`sampleId`), and a message whose samples were
 * all stored already (a duplicate-key error for each) is a `duplicate`, for as long as its samples are stored
 * (the retention; older samples are refused anyway). Its after-store effects run again, because the attempt
 * that stored it may have failed after the insert (5xx, retried) before they ran, and each is idempotent:
 * presence keeps the newest time, alert evaluation counts a sample only if it is newer than the last one the
 * rule saw (alert-state-repository.ts) and publishes through its outbox with stable ids, and the live feed is
 * best effort (a view may hear a redelivered sample twice). Concurrent deliveries of the same messages both
 * insert; each sample is stored by one of them, and both answer 2xx.
 *
 * Resolves, in the order of `messages`, once every valid message is durable; a message that is refused for
 * good (unknown or disabled device, invalid payload, over its rate and not stored before) is an outcome of its
 * own and its device hears why on `devices/{id}/errors`. A store failure rejects the whole call (503:
 * retried) and gives back the rate its messages drew; what was stored by then is a duplicate on the retry.
 */
export async function ingestTelemetryBatch(
  messages: readonly TelemetryMessage[],
  deps: IngestTelemetryDeps,
  ctx: HandlerContext,
): Promise<ItemOutcome[]> {
  const outcomes: ItemOutcome[] = new Array(messages.length);
  const refuse = (index: number, error: AppError) => {
    outcomes[index] = { outcome: 'refused', error };
    deps.metrics.rejected.inc({ code: error.code });
  };
  // A token given back is a courtesy to the device: if Redis is down as well, it stays spent (the bucket refills).
  const refundQuietly = (items: readonly TelemetryMessage[]) =>
    deps.admission
      .refund(items)
      .catch((refundError: unknown) => ctx.logger.warn({ err: refundError }, 'could not give back the rate'));
  const duplicate = (index: number) => {
    outcomes[index] = DUPLICATE;
    deps.metrics.duplicates.inc();
  };

  // 1. The devices (a MongoDB query for those the cache has not seen), then the rate limit and presence of every
  //    message in one round trip.
  const ids = new Set<string>();
  for (const message of messages) ids.add(message.deviceId);
  const devices = await deps.devices.devices(ids);
  const seen = new Set<string>();
  devices.forEach((device, id) => {
    if (device) seen.add(id);
  });
  // Before the call is sent: live-feed.ts reads the marks again after the insert if a hub changed it since.
  const epoch = deps.live?.epoch();
  const { admissions, watched } = await deps.admission.admit(messages, deps.now(), seen);
  const admitted: number[] = [];
  const limited = new Map<number, RateLimitRefusal>();
  admissions.forEach((admission, index) => {
    if (admission.kind === 'admitted') admitted.push(index);
    else limited.set(index, new RateLimitRefusal(admission.retryAfterMs, admission.notify));
  });

  // 2.–5. Check, store, alerts, presence, live. Any failure gives back the rate every admitted message drew, so
  //       that the retry of the batch is judged as if this attempt had never come (what it stored is a duplicate).
  // Admitted messages that were stored already (redeliveries): the token they drew is given back afterwards.
  const redelivered: TelemetryMessage[] = [];
  try {
    const [checked, overRate] = await Promise.all([
      check(admitted, messages, devices, deps, refuse),
      // A redelivery draws on the rate again: the ones over it are looked up before they are refused (rare).
      limited.size === 0 ? undefined : check([...limited.keys()], messages, devices, deps, () => undefined),
    ]);
    const [existing, storedBefore] = await Promise.all([
      store(checked, deps),
      overRate && storedAlready(overRate, deps),
    ]);
    const effects: Checked[] = [];
    let stored = 0;
    let offset = 0;
    // Values, not entries: an entry is an array per message.
    for (const entry of checked.values()) {
      const index = entry.index;
      const count = entry.docs.length;
      let found = 0;
      if (existing.size > 0) for (let i = offset; i < offset + count; i += 1) if (existing.has(i)) found += 1;
      offset += count;
      if (count > 0 && found === count) {
        duplicate(index);
        redelivered.push(entry.message);
      } else {
        outcomes[index] = storedOutcome(count);
        stored += 1;
      }
      effects.push(entry);
    }
    for (const [index, refusal] of limited) {
      const entry = overRate?.get(index);
      if (entry && storedBefore?.has(index)) {
        duplicate(index);
        effects.push(entry);
      } else {
        deps.metrics.rateLimited.inc();
        refuse(index, refusal);
      }
    }
    const effectDevices = new Map<string, DeviceView>();
    for (const { device } of effects) effectDevices.set(device.id, device);
    await alertsPerDevice(effects, effectDevices, deps);
    // Live views hear of the samples of the devices someone watches (the admission's answer, checked after the
    // insert by the live feed); building and publishing every device's message was ~4 % of the function's CPU for
    // listeners that mostly did not exist.
    deps.live?.stored(
      {
        devices: [...effectDevices.keys()],
        samplesOf: (devices) => effects.flatMap((entry) => (devices.has(entry.device.id) ? entry.docs : [])),
        watched,
        epoch,
      },
      stored,
      deps.now(),
    );
  } catch (error) {
    await refundQuietly(admitted.map((index) => messages[index]!));
    throw error;
  }

  // 6. A redelivery of stored messages costs their devices no rate; then the refusals are told. Only what there
  //    is to wait for is awaited: Promise.all makes a promise of every value it is given, one per message.
  const pending: Promise<unknown>[] = [];
  if (redelivered.length > 0) pending.push(refundQuietly(redelivered));
  for (let index = 0; index < outcomes.length; index += 1) {
    const outcome = outcomes[index]!;
    if (outcome.outcome !== 'refused') continue;
    const told = tellDevice(messages[index]!, outcome.error, deps, ctx);
    if (told) pending.push(told);
  }
  if (pending.length > 0) await Promise.all(pending);
  return outcomes;
}

/** One message on its own (a single event, an HTTP ingest): its outcome, or its refusal thrown. */
export async function ingestTelemetry(
  message: TelemetryMessage,
  deps: IngestTelemetryDeps,
  ctx: HandlerContext,
): Promise<IngestOutcome> {
  const [outcome] = await ingestTelemetryBatch([message], deps, ctx);
  if (outcome!.outcome === 'refused') throw outcome!.error;
  return outcome!;
}

/**
 * The messages (at `indexes`) whose device is registered and active and whose payload is valid, keyed by
 * position, with their documents; each other one is refused. `devices` holds every device of the batch (looked up once, all at once);
 * each device type is looked up once.
 */
async function check(
  indexes: number[],
  messages: readonly TelemetryMessage[],
  devices: Map<string, DeviceView | undefined>,
  deps: IngestTelemetryDeps,
  refuse: (index: number, error: AppError) => void,
): Promise<Map<number, Checked>> {
  const types = new Set<string>();
  for (const device of devices.values()) if (device?.type && device.status === 'active') types.add(device.type);
  const schemas = await lookUp(types, (type) => deps.devices.telemetrySchema(type));
  const checked = new Map<number, Checked>();
  const now = deps.now();
  for (const index of indexes) {
    const message = messages[index]!;
    const device = devices.get(message.deviceId);
    try {
      if (!device) throw new UnknownDeviceError(message.deviceId);
      if (device.status !== 'active') throw new DisabledDeviceError(message.deviceId);
      const schema: TelemetrySchema | undefined = device.type ? schemas.get(device.type) : undefined;
      const samples = validateTelemetry(message.payload, deps.policy, schema, message.receivedAt, now);
      checked.set(index, { index, message, device, docs: documentsOf(message, samples) });
    } catch (error) {
      if (!isRejection(error)) throw error;
      refuse(index, error);
    }
  }
  return checked;
}

async function lookUp<K, V>(keys: Set<K>, load: (key: K) => Promise<V>): Promise<Map<K, V>> {
  const entries = await Promise.all([...keys].map(async (key) => [key, await load(key)] as const));
  return new Map(entries);
}

/**
 * A message's samples as stored, each under its deterministic `_id`. Literal shapes, not a spread of a conditional
 * object: that is an object more per sample, and a slow path of V8's.
 */
function documentsOf(message: TelemetryMessage, samples: ValidSample[]): SampleDocument[] {
  const { deviceId, eventId, receivedAt } = message;
  const docs: SampleDocument[] = new Array(samples.length);
  for (let i = 0; i < samples.length; i += 1) {
    const { index, ts, deviceTimed, metrics, msgId } = samples[i]!;
    if (msgId === undefined) {
      docs[i] = { _id: sampleId(deviceId, eventId, index), deviceId, ts, metrics, eventId, receivedAt };
    } else {
      const _id = deviceTimed ? sampleId(deviceId, eventId, index, msgId, ts) : sampleId(deviceId, eventId, index);
      docs[i] = { _id, deviceId, ts, metrics, eventId, receivedAt, msgId };
    }
  }
  return docs;
}

/**
 * Every sample of the batch in one group-commit entry: resolves once MongoDB acknowledged all, with the
 * positions (in the order of `checked`'s documents) of those it held already.
 */
async function store(checked: Map<number, Checked>, deps: IngestTelemetryDeps): Promise<ReadonlySet<number>> {
  const docs: SampleDocument[] = [];
  for (const entry of checked.values()) for (const doc of entry.docs) docs.push(doc);
  const existing = await deps.samples.store(docs);
  deps.metrics.samplesStored.inc(docs.length - existing.size);
  return existing;
}

/** The positions of the messages whose every sample is stored already (one `_id` query for them all). */
async function storedAlready(entries: Map<number, Checked>, deps: IngestTelemetryDeps): Promise<Set<number>> {
  const ids = [...entries.values()].flatMap((entry) => entry.docs.map((doc) => doc._id));
  const found = ids.length === 0 ? new Set<string>() : await deps.samples.existing(ids);
  const out = new Set<number>();
  for (const [index, entry] of entries)
    if (entry.docs.length > 0 && entry.docs.every((doc) => found.has(doc._id))) out.add(index);
  return out;
}

/**
 * Each device's rules see all its samples of the batch at once (observe() orders them by event time); the
 * rules of every device are looked up together, and a device without rules costs nothing more (its samples are
 * not gathered).
 */
async function alertsPerDevice(
  checked: readonly Checked[],
  devices: Map<string, DeviceView>,
  deps: IngestTelemetryDeps,
): Promise<void> {
  if (devices.size === 0) return;
  const rules = await deps.alertRules.forDevices(devices.values());
  if (rules.size === 0) return;
  const samplesOf = new Map<string, AlertSample[]>();
  for (const { device, docs } of checked) {
    if (!rules.has(device.id)) continue;
    const gathered = samplesOf.get(device.id);
    if (gathered) for (const doc of docs) gathered.push(doc);
    else samplesOf.set(device.id, [...docs]);
  }
  await Promise.all(
    [...rules].map(([id, deviceRules]) => evaluateAlertRules(devices.get(id)!, deviceRules, samplesOf.get(id)!, deps)),
  );
}

/** A refusal the device hears about, as for a single event; a rate limit at most once per interval. */
function tellDevice(message: TelemetryMessage, error: AppError, deps: NoticeDeps, ctx: HandlerContext) {
  if (error instanceof RateLimitRefusal && !error.notify) return undefined;
  return notifyDevice(message, error, deps, ctx);
}
