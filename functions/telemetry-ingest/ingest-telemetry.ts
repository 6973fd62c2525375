import type { DeviceDirectory } from '../../shared/devices.js';
import type { HandlerContext } from '../../shared/function-app.js';
import type { AdmissionGate } from './admission.js';
import {
  admit,
  type DeviceMessage,
  type NoticeDeps,
  rejectVisibly,
  requireDevice,
  whileAdmitted,
} from './device-steps.js';
import { type AlertDeps, evaluateAlerts } from './evaluate-alerts.js';
import type { PresenceRepository } from './presence-repository.js';
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
  presence: PresenceRepository;
  policy: ValidationPolicy;
  now(): number;
}

export type IngestOutcome = { outcome: 'stored'; samples: number } | { outcome: 'duplicate' };

/**
 * A telemetry message from a device (MQTT via the bridge, or HTTP): admitted once, checked, stored,
 * then presence and alerts. The caller answers 2xx only when this resolves, i.e. after MongoDB
 * acknowledged the samples; a refusal is a 4xx and a notice on the device's errors topic.
 */
export function ingestTelemetry(
  message: TelemetryMessage,
  deps: IngestTelemetryDeps,
  ctx: HandlerContext,
): Promise<IngestOutcome> {
  return rejectVisibly(message, deps, ctx, async () => {
    if (!(await admit(message, deps.admission, deps.now(), deps.metrics))) return { outcome: 'duplicate' };
    return whileAdmitted(message, deps.admission, ctx, async () => {
      const device = await requireDevice(message.deviceId, deps.devices, { active: true });
      const typeSchema = device.type ? await deps.devices.telemetrySchema(device.type) : undefined;
      const samples = validateTelemetry(message.payload, deps.policy, typeSchema, message.receivedAt, deps.now());
      await deps.samples.store(toDocuments(message, samples));
      deps.metrics.samplesStored.inc(samples.length);
      await Promise.all([
        deps.presence.apply(device.id, 'seen', message.receivedAt.getTime()),
        evaluateAlerts(device, samples, deps),
      ]);
      return { outcome: 'stored', samples: samples.length };
    });
  });
}

function toDocuments(message: TelemetryMessage, samples: ValidSample[]): SampleDocument[] {
  return samples.map((sample) => ({
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
  }));
}
