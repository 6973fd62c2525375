import { z } from 'zod';
import { deviceIdSchema } from '../../shared/devices.js';
import { parseInput as parse } from '../../shared/errors.js';
import { queryObject } from '../../shared/http-io.js';
import { idempotencyKeySchema } from '../../shared/idempotency-key.js';
import { type ApiOperation, appProblems, operation, problem } from '../../shared/openapi.js';
import { cancelExecution } from './cancel-execution.js';
import { createJob } from './create-job.js';
import { deleteJob } from './delete-job.js';
import type { JobDeps } from './deps.js';
import { endJob } from './end-job.js';
import { getExecution, getJob, listExecutions, listJobs, toExecutionView, toJobView } from './query-jobs.js';
import {
  cancelJobSchema,
  createJobSchema,
  executionViewSchema,
  jobIdSchema,
  jobViewSchema,
  listExecutionsQuerySchema,
  listJobsQuerySchema,
} from './schema.js';

/** `DELETE /jobs/{jobId}?force=true|false`: anything else is a 400, as the document says. */
const deleteJobQuerySchema = z.object({ force: z.enum(['true', 'false']).optional() });

const location = (jobId: string) => ({ location: `/jobs/${encodeURIComponent(jobId)}` });
const jobAnswer = (description: string) => ({ description, schema: jobViewSchema });
const timelineSchema = z.object({
  items: z.array(z.object({ at: z.string(), kind: z.string(), details: z.record(z.string(), z.unknown()).optional() })),
});
const cancelExecutionSchema = z
  .object({ force: z.boolean().default(false), expectedVersion: z.number().int().min(1).optional() })
  .strict();

/** The app API of jobs (scopes `jobs:read`, `jobs:write`), with the contract its OpenAPI document shows. */
export function jobOperations(deps: JobDeps): ApiOperation[] {
  return [
    operation({
      method: 'POST',
      path: '/jobs',
      scope: 'jobs:write',
      summary: 'Create a job: a document for a set of devices, with rollout, abort, timeout, retry and scheduling',
      body: createJobSchema,
      rules: [
        'scheduling.endTime after startTime; the document at most 32 KiB, nested at most 64 levels, its keys without U+0000, ' +
          '__proto__, constructor or prototype; targets select devices; a registry query names type, tags or metadata ' +
          '(at most 10 metadata fields); rateIncreaseCriteria names numberOfNotifiedDevices or numberOfSucceededDevices; ' +
          'an ota job\'s document is { operation: "ota", artifactId, version, sha256, size }; a cron expression that parses (400)',
        'a job id is unique (409)',
      ],
      headers: {
        'idempotency-key': {
          description: "A retry with the same key gets the first attempt's job (Idempotent-Replayed: true)",
        },
      },
      responses: {
        201: jobAnswer('created: SCHEDULED, or IN_PROGRESS (targets are resolved by the scheduler)'),
        200: jobAnswer('a replay of the same Idempotency-Key'),
        ...appProblems,
        404: problem('an OTA job names an artifact that does not exist'),
        409: problem('a job with this id exists'),
        422: problem('the Idempotency-Key was used for another job, or the artifact has another hash'),
      },
      async handle(req, ctx) {
        const input = parse(createJobSchema, req.body, 'job');
        const key = req.headers['idempotency-key'];
        const idempotencyKey =
          key === undefined ? undefined : parse(idempotencyKeySchema, key, 'Idempotency-Key header');
        const outcome = await createJob(input, idempotencyKey, deps, ctx);
        return {
          status: outcome.replayed ? 200 : 201,
          body: toJobView(outcome.job),
          headers: { ...location(outcome.job._id), ...(outcome.replayed ? { 'idempotent-replayed': 'true' } : {}) },
        };
      },
    }),
    operation({
      method: 'GET',
      path: '/jobs',
      scope: 'jobs:read',
      summary: 'Jobs by id, filtered by status, type, or a device they target; cursor pagination',
      query: listJobsQuerySchema,
      responses: {
        200: {
          description: 'a page',
          schema: z.object({ items: z.array(jobViewSchema), nextCursor: z.string().optional() }),
        },
        ...appProblems,
      },
      async handle(req) {
        const query = parse(listJobsQuerySchema, queryObject(req.query), 'query');
        return { status: 200, body: await listJobs(query, deps) };
      },
    }),
    operation({
      method: 'GET',
      path: '/jobs/:jobId',
      params: { jobId: jobIdSchema },
      scope: 'jobs:read',
      summary: 'A job with its progress: executions counted by status',
      responses: { 200: jobAnswer('the job'), ...appProblems, 404: problem('no such job') },
      async handle(req) {
        return { status: 200, body: await getJob(parse(jobIdSchema, req.params.jobId, 'job id'), deps) };
      },
    }),
    operation({
      method: 'POST',
      path: '/jobs/:jobId/cancel',
      params: { jobId: jobIdSchema },
      scope: 'jobs:write',
      summary: 'Cancel a job: QUEUED executions are canceled; with force, IN_PROGRESS ones too',
      body: cancelJobSchema,
      bodyOptional: true,
      responses: {
        200: jobAnswer('canceled'),
        ...appProblems,
        404: problem('no such job'),
        409: problem('the job has ended'),
      },
      async handle(req, ctx) {
        const jobId = parse(jobIdSchema, req.params.jobId, 'job id');
        const body = parse(cancelJobSchema, req.body ?? {}, 'cancel request');
        await endJob(jobId, { status: 'CANCELED', ...body }, deps, ctx);
        return { status: 200, body: await getJob(jobId, deps) };
      },
    }),
    operation({
      method: 'DELETE',
      path: '/jobs/:jobId',
      params: { jobId: jobIdSchema },
      scope: 'jobs:write',
      summary: 'Delete a job and its executions (an active one only with force=true)',
      query: deleteJobQuerySchema,
      responses: {
        204: { description: 'deleted' },
        ...appProblems,
        404: problem('no such job'),
        409: problem('active'),
      },
      async handle(req, ctx) {
        const jobId = parse(jobIdSchema, req.params.jobId, 'job id');
        const query = parse(deleteJobQuerySchema, queryObject(req.query), 'query');
        await deleteJob(jobId, query.force === 'true', deps, ctx);
        return { status: 204 };
      },
    }),
    operation({
      method: 'GET',
      path: '/jobs/:jobId/executions',
      params: { jobId: jobIdSchema },
      scope: 'jobs:read',
      summary: "A job's executions by device id, filtered by status (PENDING: not yet released by the rollout)",
      query: listExecutionsQuerySchema,
      responses: {
        200: {
          description: 'a page',
          schema: z.object({ items: z.array(executionViewSchema), nextCursor: z.string().optional() }),
        },
        ...appProblems,
        404: problem('no such job'),
      },
      async handle(req) {
        const jobId = parse(jobIdSchema, req.params.jobId, 'job id');
        const query = parse(listExecutionsQuerySchema, queryObject(req.query), 'query');
        return { status: 200, body: await listExecutions(jobId, query, deps) };
      },
    }),
    operation({
      method: 'GET',
      path: '/jobs/:jobId/executions/:deviceId',
      params: { jobId: jobIdSchema, deviceId: deviceIdSchema },
      scope: 'jobs:read',
      summary: "One device's execution, with the attempts that were retried",
      responses: {
        200: { description: 'the execution', schema: executionViewSchema },
        ...appProblems,
        404: problem('none'),
      },
      async handle(req) {
        const jobId = parse(jobIdSchema, req.params.jobId, 'job id');
        const deviceId = parse(deviceIdSchema, req.params.deviceId, 'device id');
        return { status: 200, body: await getExecution(jobId, deviceId, deps) };
      },
    }),
    operation({
      method: 'POST',
      path: '/jobs/:jobId/executions/:deviceId/cancel',
      params: { jobId: jobIdSchema, deviceId: deviceIdSchema },
      scope: 'jobs:write',
      summary: "Cancel one device's execution (IN_PROGRESS only with force)",
      body: cancelExecutionSchema,
      bodyOptional: true,
      responses: {
        200: { description: 'canceled', schema: executionViewSchema },
        ...appProblems,
        404: problem('none'),
        409: problem('ended, or IN_PROGRESS without force'),
        412: problem('expectedVersion is stale'),
      },
      async handle(req, ctx) {
        const jobId = parse(jobIdSchema, req.params.jobId, 'job id');
        const deviceId = parse(deviceIdSchema, req.params.deviceId, 'device id');
        const body = parse(cancelExecutionSchema, req.body ?? {}, 'cancel request');
        const canceled = await cancelExecution({ jobId, deviceId, ...body }, deps, ctx);
        return { status: 200, body: toExecutionView(canceled) };
      },
    }),
    operation({
      method: 'GET',
      path: '/jobs/:jobId/timeline',
      params: { jobId: jobIdSchema },
      scope: 'jobs:read',
      summary: "A job's timeline: created, started, rate increases, aborted, canceled, completed",
      responses: { 200: { description: 'oldest first', schema: timelineSchema }, ...appProblems, 404: problem('none') },
      async handle(req) {
        const jobId = parse(jobIdSchema, req.params.jobId, 'job id');
        await getJob(jobId, deps);
        const items = await deps.jobs.timeline(jobId, 1_000);
        return {
          status: 200,
          body: { items: items.map((e) => ({ kind: e.kind, at: e.at.toISOString(), details: e.details })) },
        };
      },
    }),
  ];
}
