import type { Emitter } from '../../shared/emitter.js';
import type { Logger } from '../../shared/logger.js';
import type { MongoHandle } from '../../shared/mongo.js';
import { createActivitySource } from './activity-source.js';
import { createDeviceScopeReader } from './device-scope.js';
import { createReportRepository } from './report-repository.js';
import { createRollupRepository } from './rollup-repository.js';
import { type RollupDeps, runRollups } from './run-rollups.js';
import type { ScheduleDeps } from './run-schedules.js';
import { createScheduleRepository } from './schedule-repository.js';
import { createMongoTelemetrySource, type TelemetrySource } from './telemetry-source.js';

export interface DepsOptions {
  mongo: MongoHandle;
  emitter: Emitter;
  logger: Logger;
  clock?: () => Date;
  baseUrl?: string;
  limits?: Partial<ScheduleDeps['limits']>;
  /** Replaces the MongoDB telemetry adapter (tests of other storage formats). */
  telemetry?: TelemetrySource;
}

/** `mongo`: the jobs collections are read directly for job outcomes (shared/jobs.ts). */
export type AppDeps = ScheduleDeps & RollupDeps & { mongo: MongoHandle };

/** Every repository and port of report-generation over one MongoDB handle. */
export function createDeps(options: DepsOptions): AppDeps {
  const clock = options.clock ?? (() => new Date());
  const telemetry = options.telemetry ?? createMongoTelemetrySource(options.mongo);
  const rollups = createRollupRepository(options.mongo);
  const deps: AppDeps = {
    mongo: options.mongo,
    devices: createDeviceScopeReader(options.mongo),
    telemetry,
    rollups,
    reports: createReportRepository(options.mongo),
    activity: createActivitySource(options.mongo),
    schedules: createScheduleRepository(options.mongo),
    emitter: options.emitter,
    clock,
    baseUrl: options.baseUrl,
    refreshRollups: () => runRollups(undefined, deps, { logger: options.logger, invocationId: 'report-refresh' }),
    limits: { maxRows: 5_000_000, maxDevices: 10_000, rollupMaxAgeMs: 900_000, ...options.limits },
  };
  return deps;
}

export async function ensureIndexes(deps: AppDeps): Promise<void> {
  await deps.rollups.ensureIndexes();
  await deps.telemetry.ensureIndexes();
}
