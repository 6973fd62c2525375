import type { DeviceDirectory } from '../../shared/devices.js';
import type { Emitter } from '../../shared/emitter.js';
import type { StateLimits } from '../../shared/shadow.js';
import type { ShadowStore } from '../../shared/shadow-store.js';
import type { CommandRepository } from './command-repository.js';
import type { CompletionBus } from './completion-bus.js';
import type { DeltaMemo } from './delta-publisher.js';
import type { PresenceStore } from './presence.js';

export interface CommandSettings {
  queueCap: number;
  maxResends: number;
  defaultTtlSeconds: number;
  defaultTimeoutSeconds: number;
  sweepBatch: number;
}

/** What the use cases need; index.ts builds the real ones, tests may pass their own. */
export interface CommandDeps {
  commands: CommandRepository;
  presence: PresenceStore;
  bus: CompletionBus;
  emitter: Emitter;
  devices: DeviceDirectory;
  settings: CommandSettings;
  /** The device shadow, shared with telemetry-ingest (shared/shadow.ts). */
  shadows: ShadowStore;
  deltas: DeltaMemo;
  limits: StateLimits;
  clock: () => Date;
  newId: () => string;
}
