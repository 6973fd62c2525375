import { InvalidInputError } from '../../shared/errors.js';
import {
  createFunctionApp,
  eventRoute,
  type FunctionAppOptions,
  type FunctionHandler,
} from '../../shared/function-app.js';
import { openApiRoute } from '../../shared/openapi.js';
import type { AppDeps } from './deps.js';
import { reportRoutes } from './routes.js';
import { runRollups } from './run-rollups.js';
import { runDueSchedules } from './run-schedules.js';
import { EVENT_TYPES, pingDataSchema, SERVICE, TASKS, type Task } from './schema.js';

/**
 * The function: app routes, and the PingSource ticks. Each PingSource names its task in its data and in
 * the `kiottask` extension (the one the Trigger filters on); the data wins when both are present.
 */
export function createReportApp(
  deps: AppDeps,
  options: Pick<FunctionAppOptions, 'logger' | 'authorize' | 'health' | 'registry' | 'role' | 'authenticateEvent'>,
): FunctionHandler {
  const operations = reportRoutes(deps);
  return createFunctionApp({
    service: SERVICE,
    ...options,
    routes: [
      ...operations,
      openApiRoute(
        {
          title: 'kiot report-generation',
          version: '1.0.0',
          description: 'Rollups, reports (JSON, CSV, HTML), device series and report schedules.',
        },
        operations,
      ),
    ],
    events: [
      eventRoute({
        type: EVENT_TYPES.ping,
        data: pingDataSchema,
        async handle(event, data, ctx) {
          const extension = (event as unknown as Record<string, unknown>).kiottask;
          const task = (data?.task ?? extension) as Task | undefined;
          if (!task || !TASKS.includes(task)) {
            throw new InvalidInputError(
              'the ping names no task: set data.task or the kiottask extension to rollups or reports',
              { task: task ?? null },
              'unknown_task',
            );
          }
          if (task === 'rollups') await runRollups(undefined, deps, ctx);
          else await runDueSchedules(undefined, deps, ctx);
        },
      }),
    ],
  });
}
