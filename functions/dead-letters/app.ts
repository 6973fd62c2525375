import { z } from 'zod';
import { createAppAuthorizer } from '../../shared/app-authorizer.js';
import { type CloudEvent, toStructuredMessage } from '../../shared/cloudevents.js';
import { InvalidInputError, NotFoundError } from '../../shared/errors.js';
import { eventPlaneOf } from '../../shared/event-auth.js';
import {
  createEventDispatcher,
  type EventDispatcher,
  type PostResult,
  postCloudEvent,
  postMessage,
} from '../../shared/event-transport.js';
import { createFunctionApp, type FunctionHandler, type HttpRequest } from '../../shared/function-app.js';
import { queryObject } from '../../shared/http-io.js';
import type { Logger } from '../../shared/logger.js';
import type { MongoHandle } from '../../shared/mongo.js';
import { type ApiOperation, openApiRoute, operation, problem } from '../../shared/openapi.js';
import type { DeadLettersConfig } from './config.js';
import { createDeadLetterRepository } from './dead-letter-repository.js';
import { deadLetterView } from './dead-letter-view.js';
import { type ReplayDeps, replayDeadLetter, replayDeadLetters } from './replay-dead-letter.js';
import {
  deadLetterIdSchema,
  deadLetterPageSchema,
  deadLetterViewSchema,
  listQuerySchema,
  replayAllBodySchema,
  replayAllResultSchema,
  replayOneQuerySchema,
  replayOneResultSchema,
  summaryQuerySchema,
  summarySchema,
} from './schema.js';
import { storeDeadLetter } from './store-dead-letter.js';

export const SERVICE = 'dead-letters';

/** API-key scopes of the app routes (helper-3's `resource:action` form; `deadletters:*` or `*` grant both). */
export const SCOPES = { read: 'deadletters:read', replay: 'deadletters:write' } as const;

/**
 * Binary data goes in structured mode (HTTP binding §3.2, `data_base64`): shared `toBinaryMessage` turns the
 * SDK's Uint8Array body into text, which would not keep the bytes.
 */
function postStructured(
  url: string,
  event: CloudEvent<unknown>,
  dispatcher: EventDispatcher,
  timeoutMs: number,
  extraHeaders: Record<string, string>,
): Promise<PostResult> {
  const message = toStructuredMessage(event);
  return postMessage(
    url,
    { headers: { ...message.headers, ...extraHeaders }, body: message.body },
    { dispatcher, timeoutMs },
  );
}

function queryOf<S extends z.ZodType>(schema: S, request: HttpRequest): z.infer<S> {
  const parsed = schema.safeParse(queryObject(request.query));
  if (!parsed.success) throw InvalidInputError.fromZod(parsed.error, 'the query is invalid');
  return parsed.data;
}

/**
 * The dead-letter sink of every Trigger (and of the Broker): any CloudEvent POSTed here is stored with
 * Knative's error extensions; apps list them and replay one or all to the subscriber that failed.
 */
export function createDeadLettersApp(
  config: DeadLettersConfig,
  deps: { mongo: MongoHandle; logger: Logger },
): FunctionHandler {
  const repository = createDeadLetterRepository(deps.mongo);
  const dispatcher = createEventDispatcher(16);
  const plane = eventPlaneOf(config);
  // The workload token goes only to the Broker: a subscriber called directly must never see it.
  const headersFor = (url: string) => (url === config.K_SINK ? plane.producerHeaders() : {});
  const replayDeps: ReplayDeps = {
    repository,
    send: (url, event) =>
      event.data_base64 === undefined
        ? postCloudEvent(url, event, {
            dispatcher,
            timeoutMs: config.DEAD_LETTERS_REPLAY_TIMEOUT_MS,
            extraHeaders: headersFor(url),
          })
        : postStructured(url, event, dispatcher, config.DEAD_LETTERS_REPLAY_TIMEOUT_MS, headersFor(url)),
    sink: config.K_SINK,
    allowedHosts: config.DEAD_LETTERS_REPLAY_HOSTS,
    brokerOnly: config.EVENT_AUTH === 'oidc',
  };

  const operations = deadLetterOperations(repository, replayDeps, config);
  return createFunctionApp({
    service: SERVICE,
    logger: deps.logger,
    authorize: createAppAuthorizer(config, deps.mongo, deps.logger),
    role: plane.role,
    ...(plane.authenticateEvent ? { authenticateEvent: plane.authenticateEvent } : {}),
    health: { mongodb: async () => (await deps.mongo.db()).command({ ping: 1 }) },
    anyEvent: {
      data: z.unknown(),
      handle: (event, _data, ctx) => storeDeadLetter(event, { repository }, ctx),
    },
    routes: [
      ...operations,
      openApiRoute(
        {
          title: 'kiot dead-letters',
          version: '1.0.0',
          description: 'What a Trigger could not deliver: list, read, and replay to the subscriber or the Broker.',
        },
        operations,
      ),
    ],
  });
}

const replayRules = [
  'a replay goes only to a subscriber in DEAD_LETTERS_REPLAY_HOSTS, else (or with via=broker) to the Broker',
];

function deadLetterOperations(
  repository: ReturnType<typeof createDeadLetterRepository>,
  replayDeps: ReplayDeps,
  config: DeadLettersConfig,
): ApiOperation[] {
  return [
    operation({
      method: 'GET',
      path: '/dead-letters',
      scope: SCOPES.read,
      summary: 'List dead letters, newest first, by status, type, source, subject, destination, event id, time',
      query: listQuerySchema,
      responses: { 200: { description: 'a page', schema: deadLetterPageSchema } },
      async handle(request) {
        const { limit, cursor, ...filter } = queryOf(listQuerySchema, request);
        const page = await repository.list(filter, { limit, ...(cursor ? { cursor } : {}) });
        return { status: 200, body: { items: page.items.map(deadLetterView), next: page.next } };
      },
    }),
    operation({
      method: 'GET',
      path: '/dead-letter-summary',
      scope: SCOPES.read,
      summary: 'How many dead letters wait for a replay, and the devices whose events were refused since a time',
      query: summaryQuerySchema,
      rules: ['since defaults to one hour ago'],
      responses: { 200: { description: 'the summary', schema: summarySchema } },
      async handle(request) {
        const query = queryOf(summaryQuerySchema, request);
        const since = query.since ?? new Date(Date.now() - 3_600_000);
        const summary = await repository.summary(since, query.devices);
        return {
          status: 200,
          body: {
            since: since.toISOString(),
            pending: summary.pending,
            failingDevices: summary.failingDevices.map((device) => ({
              ...device,
              lastAt: device.lastAt.toISOString(),
            })),
          },
        };
      },
    }),
    operation({
      method: 'GET',
      path: '/dead-letters/:id',
      params: { id: deadLetterIdSchema },
      scope: SCOPES.read,
      summary: 'Read a dead letter: the event, the failure, the replays',
      responses: { 200: { description: 'the dead letter', schema: deadLetterViewSchema }, 404: problem('none') },
      async handle(request) {
        const doc = await repository.get(request.params.id!);
        if (!doc) throw new NotFoundError(`no dead letter ${request.params.id}`);
        return { status: 200, body: deadLetterView(doc) };
      },
    }),
    operation({
      method: 'POST',
      path: '/dead-letters/:id/replay',
      params: { id: deadLetterIdSchema },
      scope: SCOPES.replay,
      summary: 'Replay one dead letter to the subscriber that failed (or via=broker to the Broker)',
      query: replayOneQuerySchema,
      rules: replayRules,
      responses: {
        200: { description: 'replayed', schema: replayOneResultSchema },
        404: problem('none'),
        502: problem('the destination refused the replay (details: the outcome); it stays pending'),
      },
      async handle(request, ctx) {
        const { via } = queryOf(replayOneQuerySchema, request);
        return { status: 200, body: await replayDeadLetter(request.params.id!, via, replayDeps, ctx) };
      },
    }),
    operation({
      method: 'POST',
      path: '/dead-letters/replay',
      scope: SCOPES.replay,
      summary: 'Replay the dead letters a filter selects (pending by default), at most DEAD_LETTERS_REPLAY_MAX a call',
      body: replayAllBodySchema,
      bodyOptional: true,
      rules: replayRules,
      responses: { 200: { description: 'what each replay did', schema: replayAllResultSchema } },
      async handle(request, ctx) {
        const parsed = replayAllBodySchema.safeParse(request.body === undefined ? {} : request.body);
        if (!parsed.success) throw InvalidInputError.fromZod(parsed.error, 'the replay request is invalid');
        const { via, limit, ...filter } = parsed.data;
        const result = await replayDeadLetters(
          filter,
          {
            via,
            limit: Math.min(limit ?? config.DEAD_LETTERS_REPLAY_MAX, config.DEAD_LETTERS_REPLAY_MAX),
            concurrency: config.DEAD_LETTERS_REPLAY_CONCURRENCY,
          },
          replayDeps,
          ctx,
        );
        return { status: 200, body: result };
      },
    }),
  ];
}
