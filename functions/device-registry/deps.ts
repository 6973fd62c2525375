import type { Emitter } from '../../shared/emitter.js';
import type { HandlerContext } from '../../shared/function-app.js';
import type { AuthCache } from './auth-cache.js';
import type { DeviceBroker } from './device-broker.js';
import type { DeviceRepository } from './device-repository.js';
import type { Outbox } from './outbox.js';
import type { ProvisioningRepository } from './provisioning-repository.js';

/** Everything a use case may touch; index.ts builds the real ones, tests may pass their own. */
export interface RegistryDeps {
  devices: DeviceRepository;
  provisioning: ProvisioningRepository;
  broker: DeviceBroker;
  authCache: AuthCache;
  emitter: Emitter;
  /** Emits the io.kiot.device.* events that device writes leave in their documents (outbox.ts). */
  outbox: Outbox;
  now: () => Date;
  /** AES-256-GCM key for stored provisioning replies. */
  replyKey: Buffer;
  replaySeconds: number;
}

export type Ctx = HandlerContext;
