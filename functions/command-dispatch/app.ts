import { z } from 'zod';
import { deviceIdSchema } from '../../shared/devices.js';
import { DomainRefusalError, parseInput as parse } from '../../shared/errors.js';
import {
  createFunctionApp,
  eventRoute,
  type FunctionAppOptions,
  type FunctionHandler,
  type HttpResult,
  type Route,
} from '../../shared/function-app.js';
import { queryObject } from '../../shared/http-io.js';
import { idempotencyKeyHeaderSchema } from '../../shared/idempotency-key.js';
import { type ApiOperation, appProblems, openApiRoute, operation, problem } from '../../shared/openapi.js';
import { acknowledgeCommand } from './acknowledge-command.js';
import { cancelCommand } from './cancel-command.js';
import { createCommand } from './create-command.js';
import type { CommandDeps } from './deps.js';
import { desiredView, getDesiredState, patchDesiredState, republishDelta } from './desired-state.js';
import { deviceConnected, deviceDisconnected } from './device-presence.js';
import { commandSummary, getCommand, listCommands } from './query-commands.js';
import {
  ackEventDataSchema,
  commandIdSchema,
  commandPageSchema,
  commandSummarySchema,
  commandViewSchema,
  createCommandBodySchema,
  desiredStateViewSchema,
  deviceTimeoutSchema,
  idempotencyKeySchema,
  listQuerySchema,
  pingDataSchema,
  presenceEventDataSchema,
  statePatchSchema,
} from './schema.js';
import { sweepCommands } from './sweep.js';

export const SERVICE = 'command-dispatch';
/** The PingSource's `data.task` and `kiottask` extension (knative/command-dispatch/ping-source.yaml). */
export const SWEEP_TASK = 'command-sweep';

const location = (id: string) => ({ location: `/commands/${encodeURIComponent(id)}` });
const common = appProblems;
const commandAnswer = (description: string) => ({
  description,
  schema: commandViewSchema,
  headers: { location: 'the command, `/commands/{id}`' },
});

/** Every app route of command-dispatch, with the contract its OpenAPI document is generated from. */
export function commandOperations(deps: CommandDeps): ApiOperation[] {
  return [
    operation({
      method: 'POST',
      path: '/devices/:id/commands',
      params: { id: deviceIdSchema },
      scope: 'commands:write',
      summary: 'Send a command: 202 at once, or with `wait` the device answer (a direct method)',
      body: createCommandBodySchema,
      headers: {
        'idempotency-key': {
          description:
            "A retry with the same key gets the first attempt's command (Idempotent-Replayed: true); 1-255 visible ASCII",
          schema: idempotencyKeyHeaderSchema,
        },
      },
      responses: {
        200: commandAnswer('with `wait`: the device answered (SUCCEEDED, FAILED, REJECTED)'),
        202: commandAnswer('stored; sent at once if the device is online, else queued'),
        ...common,
        404: problem('unknown device'),
        422: problem('the device is disabled, or the Idempotency-Key was used for another command'),
        429: problem("the device's queue is full"),
        503: problem('a store or the event sink is unavailable'),
        504: {
          description: 'with `wait`: no answer in time; the command is still tracked',
          schema: deviceTimeoutSchema,
        },
      },
      async handle(req, ctx): Promise<HttpResult> {
        const deviceId = parse(deviceIdSchema, req.params.id, 'device id');
        const body = parse(createCommandBodySchema, req.body, 'command');
        const key = req.headers['idempotency-key'];
        const idempotencyKey =
          key === undefined ? undefined : parse(idempotencyKeySchema, key, 'Idempotency-Key header');
        const outcome = await createCommand({ deviceId, body, idempotencyKey }, deps, ctx);
        const headers: Record<string, string> = {
          ...location(outcome.command.id),
          ...('replayed' in outcome ? { 'idempotent-replayed': 'true' } : {}),
        };
        if (outcome.kind === 'accepted') return { status: 202, body: outcome.command, headers };
        if (outcome.kind === 'answered') return { status: 200, body: outcome.command, headers };
        // 504 with the id: the command is still tracked, `GET /commands/{id}` tells how it ends.
        return {
          status: 504,
          headers,
          body: {
            error: {
              code: 'device_timeout',
              message: `device ${deviceId} did not answer in time`,
              details: { commandId: outcome.command.id },
            },
            command: outcome.command,
          },
        };
      },
    }),
    operation({
      method: 'GET',
      path: '/devices/:id/commands',
      params: { id: deviceIdSchema },
      scope: 'commands:read',
      summary: "A device's commands, newest first, by status; cursor pagination",
      query: listQuerySchema,
      responses: { 200: { description: 'a page', schema: commandPageSchema }, ...common },
      async handle(req, ctx) {
        const deviceId = parse(deviceIdSchema, req.params.id, 'device id');
        const query = parse(listQuerySchema, queryObject(req.query), 'query');
        return { status: 200, body: await listCommands(deviceId, query, deps, ctx) };
      },
    }),
    operation({
      method: 'GET',
      path: '/commands',
      scope: 'commands:read',
      summary: "The fleet's commands, newest first, by status (e.g. ?status=QUEUED,SENT,DELIVERED); cursor pagination",
      query: listQuerySchema,
      responses: { 200: { description: 'a page', schema: commandPageSchema }, ...common },
      async handle(req, ctx) {
        const query = parse(listQuerySchema, queryObject(req.query), 'query');
        return { status: 200, body: await listCommands(undefined, query, deps, ctx) };
      },
    }),
    operation({
      method: 'GET',
      path: '/command-summary',
      scope: 'commands:read',
      summary: 'Commands in flight (QUEUED, SENT, DELIVERED: waiting for their device), by status',
      responses: { 200: { description: 'the counts', schema: commandSummarySchema }, ...common },
      async handle() {
        return { status: 200, body: await commandSummary(deps) };
      },
    }),
    operation({
      method: 'GET',
      path: '/commands/:commandId',
      params: { commandId: commandIdSchema },
      scope: 'commands:read',
      summary: 'A command with its status history',
      responses: {
        200: { description: 'the command', schema: commandViewSchema },
        ...common,
        404: problem('unknown command'),
      },
      async handle(req, ctx) {
        return {
          status: 200,
          body: await getCommand(parse(commandIdSchema, req.params.commandId, 'command id'), deps, ctx),
        };
      },
    }),
    operation({
      method: 'PATCH',
      path: '/devices/:id/state/desired',
      params: { id: deviceIdSchema },
      scope: 'commands:write',
      summary: 'Merge-patch the desired state (RFC 7386); the delta goes to the device, retained',
      body: statePatchSchema,
      rules: [
        'state keys are non-empty, without "$", "." or U+0000, and not __proto__, constructor or prototype; strings ' +
          'and keys well-formed Unicode; nested at most SHADOW_MAX_DEPTH (6) levels; the state at most SHADOW_MAX_BYTES (400)',
      ],
      headers: {
        'if-match': { description: 'the shadow version last seen (its ETag), e.g. "7"; absent or * for none' },
      },
      responses: {
        200: {
          description: 'the desired state now',
          schema: desiredStateViewSchema,
          headers: { etag: 'the shadow version' },
        },
        ...common,
        404: problem('unknown device'),
        409: problem('the shadow kept changing under the update (retry)'),
        412: problem('the shadow changed since that version'),
        422: problem('the device is disabled'),
        503: problem('a store or the event sink is unavailable'),
      },
      async handle(req) {
        const deviceId = parse(deviceIdSchema, req.params.id, 'device id');
        const shadow = await patchDesiredState(
          // The raw body, not a zod copy: zod drops a `__proto__` key silently, checkStatePatch refuses it.
          { deviceId, patch: req.body, ifMatch: req.headers['if-match'] },
          deps,
        );
        return { status: 200, body: desiredView(shadow), headers: { etag: `"${shadow.version}"` } };
      },
    }),
    operation({
      method: 'GET',
      path: '/devices/:id/state/desired',
      params: { id: deviceIdSchema },
      scope: 'commands:read',
      summary: 'The desired and reported state and their delta',
      responses: {
        200: {
          description: 'the desired state',
          schema: desiredStateViewSchema,
          headers: { etag: 'the shadow version' },
        },
        ...common,
        404: problem('unknown device'),
        422: problem('the device is disabled'),
      },
      async handle(req) {
        const shadow = await getDesiredState(parse(deviceIdSchema, req.params.id, 'device id'), deps);
        return { status: 200, body: desiredView(shadow), headers: { etag: `"${shadow.version}"` } };
      },
    }),
    operation({
      method: 'DELETE',
      path: '/commands/:commandId',
      params: { commandId: commandIdSchema },
      scope: 'commands:write',
      summary: 'Cancel a command that is still queued',
      responses: {
        200: { description: 'cancelled', schema: commandViewSchema },
        ...common,
        404: problem('unknown command'),
        409: problem('no longer queued'),
      },
      async handle(req, ctx) {
        return {
          status: 200,
          body: await cancelCommand(parse(commandIdSchema, req.params.commandId, 'command id'), deps, ctx),
        };
      },
    }),
  ];
}

function events(deps: CommandDeps) {
  return [
    eventRoute({
      type: 'io.kiot.command.acknowledged',
      data: ackEventDataSchema,
      handle: (event, data, ctx) => acknowledgeCommand(event, data, deps, ctx),
    }),
    eventRoute({
      type: 'io.kiot.device.connected',
      data: presenceEventDataSchema,
      handle: (event, data, ctx) => deviceConnected(event, data, deps, ctx),
    }),
    eventRoute({
      type: 'io.kiot.device.disconnected',
      data: presenceEventDataSchema,
      handle: (event, data) => deviceDisconnected(event, data, deps),
    }),
    eventRoute({
      type: 'io.kiot.state.reported',
      // Any data: what is not an object is telemetry-ingest's to refuse, and carries no delta.
      data: z.unknown(),
      handle: (event, data) => republishDelta(event, data, deps),
    }),
    eventRoute({
      type: 'dev.knative.sources.ping',
      data: pingDataSchema,
      async handle(_event, data, ctx) {
        if (data?.task !== undefined && data.task !== SWEEP_TASK) {
          throw new DomainRefusalError('unknown_task', `command-dispatch runs ${SWEEP_TASK}, not ${data.task}`);
        }
        await sweepCommands(deps, ctx);
      },
    }),
  ];
}

export type CommandAppOptions = Pick<
  FunctionAppOptions,
  'logger' | 'health' | 'authorize' | 'registry' | 'role' | 'authenticateEvent'
> & {
  extraRoutes?: Route[];
  extraEvents?: FunctionAppOptions['events'];
};

/** The whole HTTP surface of command-dispatch: app routes and consumed CloudEvents. */
export function createCommandDispatchApp(deps: CommandDeps, options: CommandAppOptions): FunctionHandler {
  const operations = commandOperations(deps);
  return createFunctionApp({
    service: SERVICE,
    logger: options.logger,
    health: options.health,
    authorize: options.authorize,
    registry: options.registry,
    ...(options.role ? { role: options.role } : {}),
    ...(options.authenticateEvent ? { authenticateEvent: options.authenticateEvent } : {}),
    routes: [
      ...operations,
      openApiRoute(
        {
          title: 'kiot command-dispatch',
          version: '1.0.0',
          description: 'Commands to devices (queued, direct, tracked) and their desired state.',
        },
        operations,
      ),
      ...(options.extraRoutes ?? []),
    ],
    events: [...events(deps), ...(options.extraEvents ?? [])],
  });
}
