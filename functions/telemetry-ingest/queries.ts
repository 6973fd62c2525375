import type { DeviceDirectory } from '../../shared/devices.js';
import { NotFoundError } from '../../shared/errors.js';
import { decodeCursor, encodeCursor } from '../../shared/keyset-cursor.js';
import type { Shadow } from '../../shared/shadow.js';
import type { ShadowStore } from '../../shared/shadow-store.js';
import type { AlertDocument, AlertsRepository } from './alerts-repository.js';
import type { Presence, PresenceRepository } from './presence-repository.js';
import type { TelemetryRepository } from './telemetry-repository.js';

/** Read-side use cases of the app API. Apps get 404 for an unknown device (apps retry nothing). */

export interface StateView {
  deviceId: string;
  shadow: Omit<Shadow, 'deviceId'>;
  presence: Presence;
}

export async function getDeviceState(
  deviceId: string,
  deps: { devices: DeviceDirectory; shadows: ShadowStore; presence: PresenceRepository },
): Promise<StateView> {
  if (!(await deps.devices.device(deviceId)))
    throw new NotFoundError(`device ${deviceId} is not registered`, 'unknown_device');
  const [shadow, presence] = await Promise.all([deps.shadows.load(deviceId), deps.presence.get(deviceId)]);
  const { deviceId: _id, ...rest } = shadow;
  return { deviceId, shadow: rest, presence };
}

export interface TelemetryPage {
  deviceId: string;
  items: { ts: string; metrics: Record<string, number>; msgId?: string }[];
  nextCursor: string | null;
}

export async function queryTelemetry(
  input: { deviceId: string; from: Date; to: Date; metrics: string[]; limit: number; cursor?: string },
  deps: { devices: DeviceDirectory; telemetry: TelemetryRepository },
): Promise<TelemetryPage> {
  if (!(await deps.devices.device(input.deviceId)))
    throw new NotFoundError(`device ${input.deviceId} is not registered`, 'unknown_device');
  const after = input.cursor === undefined ? undefined : decodeCursor(input.cursor);
  const docs = await deps.telemetry.find({
    deviceId: input.deviceId,
    from: input.from,
    to: input.to,
    metrics: input.metrics,
    limit: input.limit,
    ...(after ? { after: { ts: after.time, id: after.id } } : {}),
  });
  const last = docs[docs.length - 1];
  return {
    deviceId: input.deviceId,
    items: docs.map((doc) => ({
      ts: doc.ts.toISOString(),
      metrics: doc.metrics,
      ...(doc.msgId ? { msgId: doc.msgId } : {}),
    })),
    nextCursor: docs.length === input.limit && last ? encodeCursor(last.ts, last._id) : null,
  };
}

export interface AlertView
  extends Omit<AlertDocument, '_id' | 'raisedAt' | 'clearedAt' | 'acknowledgedAt' | 'acknowledgedBy'> {
  id: string;
  raisedAt: string;
  clearedAt: string | null;
  acknowledgedAt: string | null;
  acknowledgedBy: string | null;
}

export async function listAlerts(
  input: { deviceId?: string; ruleId?: string; status?: 'active' | 'cleared'; limit: number; cursor?: string },
  deps: { alerts: AlertsRepository },
): Promise<{ items: AlertView[]; nextCursor: string | null }> {
  const after = input.cursor === undefined ? undefined : decodeCursor(input.cursor);
  const docs = await deps.alerts.list({
    ...input,
    ...(after ? { after: { raisedAt: after.time, id: after.id } } : {}),
  });
  const last = docs[docs.length - 1];
  return {
    items: docs.map(alertView),
    nextCursor: docs.length === input.limit && last ? encodeCursor(last.raisedAt, last._id) : null,
  };
}

/** An alert as the API shows it. */
export function alertView(doc: AlertDocument): AlertView {
  const { _id, raisedAt, clearedAt, acknowledgedAt, acknowledgedBy, ...rest } = doc;
  return {
    id: _id,
    ...rest,
    raisedAt: raisedAt.toISOString(),
    clearedAt: clearedAt?.toISOString() ?? null,
    acknowledgedAt: acknowledgedAt?.toISOString() ?? null,
    acknowledgedBy: acknowledgedBy ?? null,
  };
}
