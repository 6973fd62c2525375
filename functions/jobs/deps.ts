import type { Emitter } from '../../shared/emitter.js';
import type { HandlerContext } from '../../shared/function-app.js';
import type { ArtifactStore } from './artifact-store.js';
import type { DevicePublisher } from './device-publisher.js';
import type { ExecutionRepository } from './execution-repository.js';
import type { JobRepository } from './job-repository.js';
import type { TargetResolver } from './targets.js';

export interface JobSettings {
  /** Executions created, released or swept per batch, so one pass stays bounded. */
  batchSize: number;
  /** The largest artifact an upload may send. */
  artifactMaxBytes: number;
  /** Base URL devices download artifacts from (the jobs service's public URL). */
  publicUrl: string;
}

/** What the use cases need; index.ts builds the real ones, tests may pass their own (a test clock). */
export interface JobDeps {
  jobs: JobRepository;
  executions: ExecutionRepository;
  targets: TargetResolver;
  artifacts: ArtifactStore;
  emitter: Emitter;
  /** How notifications and answers reach devices. */
  devicePublisher: DevicePublisher;
  settings: JobSettings;
  clock: () => Date;
}

export type Ctx = HandlerContext;
