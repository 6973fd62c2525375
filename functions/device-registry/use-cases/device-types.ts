import type { DeviceTypeDocument, TelemetrySchema } from '../../../shared/devices.js';
import { NotFoundError } from '../../../shared/errors.js';
import type { RegistryDeps } from '../deps.js';

/** The telemetry schema of a device type, read by telemetry-ingest through shared/devices.ts. */
export async function putDeviceType(type: string, telemetrySchema: TelemetrySchema, deps: RegistryDeps) {
  return typeView(await deps.devices.putType(type, telemetrySchema, deps.now()));
}

export async function getDeviceType(type: string, deps: RegistryDeps) {
  const found = await deps.devices.getType(type);
  if (!found) throw new NotFoundError(`no device type ${type}`, 'device_type_not_found');
  return typeView(found);
}

function typeView(doc: DeviceTypeDocument) {
  return {
    type: doc._id,
    ...(doc.telemetrySchema ? { telemetrySchema: doc.telemetrySchema } : {}),
    version: doc.version,
    updatedAt: doc.updatedAt.toISOString(),
  };
}
