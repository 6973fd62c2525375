import { z } from 'zod';
import type { CloudEvent } from '../../shared/cloudevents.js';
import type { DeviceAuthenticator } from '../../shared/device-auth.js';
import { DEVICE_BATCH_MAX_ITEMS, deviceBatchItemSchema } from '../../shared/device-batch.js';
import { deviceIdSchema } from '../../shared/devices.js';
import { InvalidInputError } from '../../shared/errors.js';
import {
  createFunctionApp,
  type EventRoute,
  eventRoute,
  type FunctionAppOptions,
  type FunctionHandler,
} from '../../shared/function-app.js';
import { openApiRoute } from '../../shared/openapi.js';
import { artifactOperations } from './artifact-routes.js';
import type { JobDeps } from './deps.js';
import { deviceChanged, deviceConnected, deviceDeleted, devicesChanged } from './device-events.js';
import { handleDeviceRequest } from './device-requests.js';
import { type DeviceRequest, JOB_REQUEST_TYPES } from './device-topics.js';
import { jobOperations } from './job-routes.js';
import { type Scheduler, TICK_TYPE } from './scheduler.js';
import { deviceRequestDataSchema, jobIdSchema, tickDataSchema } from './schema.js';

export const SERVICE = 'jobs';

const deviceOf = (event: CloudEvent<unknown>) => {
  const parsed = deviceIdSchema.safeParse(event.subject);
  if (!parsed.success)
    throw new InvalidInputError('the event subject must be a device id', undefined, 'invalid_subject');
  return parsed.data;
};

const registryDeviceSchema = z
  .object({
    id: deviceIdSchema,
    type: z.string().optional(),
    tags: z.array(z.string()).default([]),
    metadata: z.record(z.string(), z.unknown()).default({}),
    status: z.string(),
  })
  .passthrough();

/** The CloudEvents jobs consumes (knative/jobs/ Triggers). */
export function jobEvents(deps: JobDeps, scheduler: Scheduler): EventRoute[] {
  const requests = (Object.entries(JOB_REQUEST_TYPES) as [DeviceRequest, string][]).map(([request, type]) =>
    eventRoute({
      type,
      data: deviceRequestDataSchema,
      async handle(event, data, ctx) {
        const needsJob = request === 'describe' || request === 'update';
        const rawJobId = (event as unknown as { jobid?: unknown }).jobid ?? data.jobId;
        const jobId = needsJob ? jobIdSchema.safeParse(rawJobId) : undefined;
        if (jobId && !jobId.success)
          throw new InvalidInputError('the event names no valid job id', undefined, 'invalid_job_id');
        const { jobId: _ignored, ...payload } = data;
        await handleDeviceRequest({ deviceId: deviceOf(event), request, jobId: jobId?.data, payload }, deps, ctx);
      },
    }),
  );
  return [
    ...requests,
    eventRoute({
      type: 'io.kiot.device.connected',
      data: z.unknown(),
      handle: (event, _data, ctx) => deviceConnected(deviceOf(event), deps, ctx),
    }),
    ...['io.kiot.device.registered', 'io.kiot.device.updated'].map((type) =>
      eventRoute({
        type,
        data: registryDeviceSchema,
        handle: (_event, device, ctx) => deviceChanged(device, deps, ctx),
      }),
    ),
    eventRoute({
      type: 'io.kiot.device.registered.batch',
      // Our registry's own contract: an item that does not match it is a bug, and the batch goes to dead letters.
      data: z
        .array(deviceBatchItemSchema.extend({ data: registryDeviceSchema }))
        .min(1)
        .max(DEVICE_BATCH_MAX_ITEMS),
      handle: (_event, items, ctx) =>
        devicesChanged(
          items.map((item) => item.data),
          deps,
          ctx,
        ),
    }),
    eventRoute({
      type: 'io.kiot.device.deleted',
      data: z.unknown(),
      handle: (event, _data, ctx) => deviceDeleted(deviceOf(event), deps, ctx),
    }),
    eventRoute({ type: TICK_TYPE, data: tickDataSchema, handle: (_event, _data, ctx) => scheduler.onTick(ctx) }),
  ];
}

export function createJobsApp(
  deps: JobDeps,
  scheduler: Scheduler,
  devices: DeviceAuthenticator,
  options: Pick<FunctionAppOptions, 'logger' | 'health' | 'authorize' | 'role' | 'authenticateEvent'>,
): FunctionHandler {
  const operations = [...jobOperations(deps), ...artifactOperations(deps, devices)];
  return createFunctionApp({
    service: SERVICE,
    ...options,
    routes: [
      ...operations,
      openApiRoute(
        { title: 'kiot jobs', version: '1', description: 'Fleet jobs and OTA rollouts (modelled on AWS IoT Jobs)' },
        operations,
      ),
    ],
    events: jobEvents(deps, scheduler),
  });
}
