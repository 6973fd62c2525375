import type { DeviceDirectory, DeviceView, TelemetrySchema } from '../../shared/devices.js';
import type { AppError } from '../../shared/errors.js';
import type { HandlerContext } from '../../shared/function-app.js';
import type { AdmissionGate } from './admission.js';
import { type DeviceMessage, type NoticeDeps, notifyDevice } from './device-steps.js';
import { type AlertDeps, evaluateAlertRules } from './evaluate-alerts.js';
import type { LiveFeed } from './live-feed.js';
import {
  DisabledDeviceError,
  EventInProgressError,
  isRejection,
  RateLimitRefusal,
  UnknownDeviceError,
} from './refusals.js';
import { type SampleDocument, sampleId } from './telemetry-repository.js';
import { type ValidationPolicy, type ValidSample, validateTelemetry } from './validate-telemetry.js';

export interface TelemetryMessage extends DeviceMessage {
  /** The device's JSON payload, unparsed by any schema yet. */
  payload: unknown;
}

export interface IngestTelemetryDeps extends NoticeDeps, AlertDeps {
  admission: AdmissionGate;
  devices: DeviceDirectory;
  /** The group commit in front of the `telemetry` collection: resolves once MongoDB acknowledged. */
  samples: { store(docs: SampleDocument[]): Promise<void> };
  /** Live views hear of stored samples (best effort, never awaited). */
  live?: Pick<LiveFeed, 'stored'>;
  policy: ValidationPolicy;
  now(): number;
}

export type IngestOutcome = { outcome: 'stored'; samples: number } | { outcome: 'duplicate' };

/** What became of one message of a batch: stored, a duplicate of a stored one, or refused for good (4xx). */
export type ItemOutcome = IngestOutcome | { outcome: 'refused'; error: AppError };

interface Checked {
  message: TelemetryMessage;
  device: DeviceView;
  samples: ValidSample[];
}

/**
 * Telemetry messages from devices (a batch event of the bridge, a single event, an HTTP ingest), with work
 * sized by the batch rather than by the message: one admission round trip to Redis for every id, one
 * `insertMany` (through the group commit, which also merges concurrent batches), one presence update per
 * device (in admission's post-insert call), alert evaluation per device over its samples in event-time order.
 *
 * Resolves, in the order of `messages`, once every valid message is durable; a message that is refused for
 * good (unknown or disabled device, invalid payload, over its rate) is an outcome of its own and its device
 * hears why on `devices/{id}/errors`. A store failure, or a message that another delivery is storing right
 * now, rejects the whole call (503 / 409: retried); what was stored by then is a duplicate on the retry.
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

  // 1. Dedup and rate limit, every message in one round trip; meanwhile the devices are looked up (a MongoDB
  //    query for those the cache has not seen), so that the two round trips before the insert overlap.
  const [admitted_, lookup] = await Promise.allSettled([
    deps.admission.admit(messages, deps.now()),
    deps.devices.devices(new Set(messages.map((message) => message.deviceId))),
  ]);
  if (admitted_.status === 'rejected') throw admitted_.reason;
  const admissions = admitted_.value;
  const admitted: number[] = [];
  let busy: string | undefined;
  admissions.forEach((admission, index) => {
    if (admission.kind === 'admitted') admitted.push(index);
    else if (admission.kind === 'duplicate') {
      outcomes[index] = { outcome: 'duplicate' };
      deps.metrics.duplicates.inc();
    } else if (admission.kind === 'in_progress') busy ??= messages[index]!.eventId;
    else {
      deps.metrics.rateLimited.inc();
      refuse(index, new RateLimitRefusal(admission.retryAfterMs, admission.notify));
    }
  });

  // 2.–5. Check, store, presence and alerts; then remember what is durable. Any failure releases every
  //       admitted id and gives back its rate, so that the retry of the batch is processed again as if this
  //       attempt had never come (stored samples dedup by `_id`).
  const accepted = admitted.map((index) => messages[index]!);
  try {
    if (lookup.status === 'rejected') throw lookup.reason;
    const checked = await check(admitted, messages, lookup.value, deps, refuse);
    const docs = await store(checked, deps);
    for (const [index, { samples }] of checked) outcomes[index] = { outcome: 'stored', samples: samples.length };
    await alertsPerDevice(checked, deps);
    const refused = admitted.filter((index) => outcomes[index]?.outcome === 'refused').map((i) => messages[i]!);
    // `complete` also marks the devices seen (presence), in the same round trip.
    const [watched] = await Promise.all([
      deps.admission.complete([...checked.values()].map((entry) => entry.message)),
      refused.length > 0 ? deps.admission.forget(refused) : undefined,
    ]);
    // Live views hear of the samples of the devices someone watches (the answer of `complete`); building and
    // publishing every device's message was ~4 % of the function's CPU for listeners that mostly did not exist.
    deps.live?.stored(
      watched.size === 0 ? [] : docs.filter((doc) => watched.has(doc.deviceId)),
      checked.size,
      deps.now(),
    );
  } catch (error) {
    // If Redis is down as well, the pending marks expire on their own (pendingTtlSeconds).
    await deps.admission
      .release(accepted)
      .catch((releaseError: unknown) => ctx.logger.warn({ err: releaseError }, 'could not release the dedup marks'));
    throw error;
  }

  // 6. Another delivery holds one of the messages: the batch is retried (409) once that one has finished, and
  //    the refusals are told then, so a device hears about each once.
  if (busy !== undefined) throw new EventInProgressError(busy);
  await Promise.all(
    outcomes.map((outcome, index) =>
      outcome.outcome === 'refused' ? tellDevice(messages[index]!, outcome.error, deps, ctx) : undefined,
    ),
  );
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
 * The admitted messages whose device is registered and active and whose payload is valid, keyed by
 * position; each other one is refused. `devices` holds every device of the batch (looked up once, all at once);
 * each device type is looked up once.
 */
async function check(
  admitted: number[],
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
  for (const index of admitted) {
    const message = messages[index]!;
    const device = devices.get(message.deviceId);
    try {
      if (!device) throw new UnknownDeviceError(message.deviceId);
      if (device.status !== 'active') throw new DisabledDeviceError(message.deviceId);
      const schema: TelemetrySchema | undefined = device.type ? schemas.get(device.type) : undefined;
      const samples = validateTelemetry(message.payload, deps.policy, schema, message.receivedAt, now);
      checked.set(index, { message, device, samples });
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

/** Every sample of the batch in one group-commit entry: resolves with them once MongoDB acknowledged all. */
async function store(checked: Map<number, Checked>, deps: IngestTelemetryDeps): Promise<SampleDocument[]> {
  const docs: SampleDocument[] = [];
  for (const { message, samples } of checked.values()) {
    for (const sample of samples) {
      docs.push({
        _id: sampleId(
          message.deviceId,
          message.eventId,
          sample.index,
          sample.msgId !== undefined && sample.deviceTimed ? { msgId: sample.msgId, deviceTs: sample.ts } : undefined,
        ),
        deviceId: message.deviceId,
        ts: sample.ts,
        metrics: sample.metrics,
        eventId: message.eventId,
        receivedAt: message.receivedAt,
        ...(sample.msgId === undefined ? {} : { msgId: sample.msgId }),
      });
    }
  }
  await deps.samples.store(docs);
  deps.metrics.samplesStored.inc(docs.length);
  return docs;
}

/**
 * Each device's rules see all its samples of the batch at once (observe() orders them by event time); the
 * rules of every device are looked up together, and a device without rules costs nothing more.
 */
async function alertsPerDevice(checked: Map<number, Checked>, deps: IngestTelemetryDeps): Promise<void> {
  const byDevice = new Map<string, { device: DeviceView; samples: ValidSample[] }>();
  for (const { device, samples } of checked.values()) {
    const entry = byDevice.get(device.id);
    if (entry) entry.samples.push(...samples);
    else byDevice.set(device.id, { device, samples: [...samples] });
  }
  if (byDevice.size === 0) return;
  const rules = await deps.alertRules.forDevices([...byDevice.values()].map((entry) => entry.device));
  await Promise.all(
    [...rules].map(([id, deviceRules]) => {
      const { device, samples } = byDevice.get(id)!;
      return evaluateAlertRules(device, deviceRules, samples, deps);
    }),
  );
}

/** A refusal the device hears about, as for a single event; a rate limit at most once per interval. */
function tellDevice(message: TelemetryMessage, error: AppError, deps: NoticeDeps, ctx: HandlerContext) {
  if (error instanceof RateLimitRefusal && !error.notify) return undefined;
  return notifyDevice(message, error, deps, ctx);
}
