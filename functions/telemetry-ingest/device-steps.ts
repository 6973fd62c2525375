import type { DeviceDirectory, DeviceView } from '../../shared/devices.js';
import type { Emitter } from '../../shared/emitter.js';
import type { AppError } from '../../shared/errors.js';
import type { HandlerContext } from '../../shared/function-app.js';
import type { AdmissionGate } from './admission.js';
import type { IngestMetrics } from './metrics.js';
import {
  DisabledDeviceError,
  EventInProgressError,
  isRejection,
  RateLimitRefusal,
  UnknownDeviceError,
} from './refusals.js';
import { EMITTED_TYPES, type RejectionNotice } from './schema.js';

/** What every device message carries into a use case. */
export interface DeviceMessage {
  eventId: string;
  deviceId: string;
  /** When the bridge received it (CloudEvent `time`), or now. */
  receivedAt: Date;
}

/** Steps shared by the telemetry and state use cases. */

/**
 * Dedup (a mark in Redis) and rate limit in one step: `false` when the event was already applied. For state
 * reports, whose merge bumps the shadow's version and so is not idempotent; telemetry dedups by its samples' `_id`.
 */
export async function admit(
  message: DeviceMessage,
  gate: AdmissionGate,
  now: number,
  metrics: IngestMetrics,
): Promise<boolean> {
  const admission = (await gate.admitOnce([message], now))[0]!;
  switch (admission.kind) {
    case 'admitted':
      return true;
    case 'duplicate':
      metrics.duplicates.inc();
      return false;
    case 'in_progress':
      throw new EventInProgressError(message.eventId);
    case 'limited':
      metrics.rateLimited.inc();
      throw new RateLimitRefusal(admission.retryAfterMs, admission.notify);
  }
}

export async function requireDevice(
  deviceId: string,
  devices: DeviceDirectory,
  options: { active: boolean },
): Promise<DeviceView> {
  const device = await devices.device(deviceId);
  if (!device) throw new UnknownDeviceError(deviceId);
  if (options.active && device.status !== 'active') throw new DisabledDeviceError(deviceId);
  return device;
}

/** Runs the use case after admission; on any failure forgets the event so that its retry is processed. */
export async function whileAdmitted<T>(
  message: DeviceMessage,
  gate: AdmissionGate,
  ctx: HandlerContext,
  work: () => Promise<T>,
): Promise<T> {
  try {
    const result = await work();
    await gate.complete([message], { marked: true });
    return result;
  } catch (error) {
    // Refused for good: forgotten, its rate spent. Failed (retried): released, its rate given back. If Redis
    // is down as well, the release is retried in the background and the mark expires anyway (pendingTtlSeconds).
    await (isRejection(error) ? gate.forget([message]) : gate.release([message])).catch((releaseError: unknown) =>
      ctx.logger.warn({ err: releaseError }, 'could not release the dedup mark'),
    );
    throw error;
  }
}

export interface NoticeDeps {
  emitter: Emitter;
  metrics: IngestMetrics;
}

/**
 * Every refusal is visible twice: the 4xx sends the event to the dead-letter sink, and the device
 * hears why on `devices/{id}/errors` (QoS 1, not retained; `notifyDevice`). A rate limit is told at most
 * once per notice interval, so a flood is not doubled by its notices.
 */
export async function rejectVisibly<T>(
  message: Omit<DeviceMessage, 'receivedAt'>,
  deps: NoticeDeps,
  ctx: HandlerContext,
  work: () => Promise<T>,
): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (!isRejection(error)) throw error;
    deps.metrics.rejected.inc({ code: error.code });
    if (error instanceof RateLimitRefusal && !error.notify) throw error;
    await notifyDevice(message, error, deps, ctx);
    throw error;
  }
}

/**
 * Tells a device why its message was refused. The notice has a stable id per event, so a repeated refusal
 * does not tell the device twice. If the sink cannot take the notice, the refusal still stands (the
 * dead-letter record holds the reason) and the failure is logged and counted.
 */
export async function notifyDevice(
  message: Omit<DeviceMessage, 'receivedAt'>,
  error: AppError,
  deps: NoticeDeps,
  ctx: HandlerContext,
): Promise<void> {
  const notice: RejectionNotice = { code: error.code, message: error.message, eventId: message.eventId };
  if (error.details !== undefined) notice.details = error.details;
  try {
    await deps.emitter.emit({
      type: EMITTED_TYPES.mqttPublish,
      id: `rejected:${message.eventId}`,
      subject: message.deviceId,
      data: { topic: `devices/${message.deviceId}/errors`, payload: notice, qos: 1, retain: false },
    });
  } catch (emitError) {
    deps.metrics.noticeFailures.inc();
    ctx.logger.error(
      { err: emitError, deviceId: message.deviceId, eventId: message.eventId },
      'could not emit the rejection notice',
    );
  }
}
