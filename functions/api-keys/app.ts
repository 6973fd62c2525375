import { type Authorizer, anyKeyIdSchema } from '../../shared/api-keys.js';
import { parseInput as parse, UnauthorizedError } from '../../shared/errors.js';
import { createFunctionApp, type FunctionHandler, type HttpRequest } from '../../shared/function-app.js';
import { queryObject } from '../../shared/http-io.js';
import type { Logger } from '../../shared/logger.js';
import { appProblems, openApiRoute, operation, problem } from '../../shared/openapi.js';
import { cursorOf } from './key-repository.js';
import * as s from './schema.js';
import { createKey, describeCaller, getKey, type KeyDeps, revokeKey } from './use-cases.js';
import { keyView } from './view.js';

const callerOf = (request: HttpRequest) => {
  if (!request.principal) throw new UnauthorizedError();
  return request.principal;
};
// The answer that carries a secret must not be stored by any cache on the way (RFC 9111 §5.2.2.5).
const NO_STORE = { 'cache-control': 'no-store' };

export function apiKeyOperations(deps: KeyDeps) {
  return [
    operation({
      method: 'POST',
      path: '/api-keys',
      scope: s.SCOPES.write,
      summary: 'Create an API key; the key is in this answer only',
      body: s.createKeySchema,
      rules: [`expiresAt lies in the future, at most ${s.MAX_LIFETIME_DAYS} days ahead (400)`],
      responses: {
        201: {
          description: 'created',
          schema: s.createdKeySchema,
          headers: { location: 'the key', 'cache-control': 'no-store' },
        },
        ...appProblems,
        403: problem('the caller lacks keys:write, or a scope it asks to grant'),
        503: problem('MongoDB is unavailable'),
      },
      async handle(request, ctx) {
        const created = await createKey(parse(s.createKeySchema, request.body, 'key'), callerOf(request), deps, ctx);
        return { status: 201, body: created, headers: { ...NO_STORE, location: `/api-keys/${created.id}` } };
      },
    }),
    operation({
      method: 'GET',
      path: '/api-keys',
      scope: s.SCOPES.read,
      summary: 'List managed API keys, newest first (the bootstrap keys of the Secret are not listed)',
      query: s.listQuerySchema,
      responses: {
        200: { description: 'a page', schema: s.keyPageSchema },
        ...appProblems,
        503: problem('MongoDB is unavailable'),
      },
      async handle(request) {
        const query = parse(s.listQuerySchema, queryObject(request.query), 'query');
        const now = deps.now();
        const docs = await deps.keys.list(query, now);
        const page = docs.slice(0, query.limit);
        return {
          status: 200,
          body: {
            items: page.map((doc) => keyView(doc, now)),
            nextCursor: docs.length > query.limit ? cursorOf(page.at(-1)!) : null,
          },
        };
      },
    }),
    operation({
      // Before `/api-keys/:id`: a managed key id is 16 hex digits, so `self` never names one.
      method: 'GET',
      path: '/api-keys/self',
      summary: 'The key making this request: its id, scopes and kind (any valid key; no scope needed)',
      responses: {
        200: { description: 'who is asking', schema: s.selfViewSchema },
        ...appProblems,
        503: problem('MongoDB is unavailable'),
      },
      async handle(request) {
        return { status: 200, body: await describeCaller(callerOf(request), deps), headers: NO_STORE };
      },
    }),
    operation({
      method: 'GET',
      path: '/api-keys/:id',
      scope: s.SCOPES.read,
      summary: 'Read a managed API key: scopes, expiry, last use',
      // Any key's id, as GET /api-keys/self names it: a bootstrap key (the Secret's) has no record here, a 404.
      params: { id: anyKeyIdSchema },
      responses: {
        200: { description: 'the key', schema: s.keyViewSchema },
        ...appProblems,
        404: problem(
          'no such managed key (a bootstrap key lives in the Secret), or it is revoked (code revoked; details: the record, who revoked it and when)',
        ),
        503: problem('MongoDB is unavailable'),
      },
      async handle(request) {
        return { status: 200, body: await getKey(request.params.id!, deps) };
      },
    }),
    operation({
      method: 'DELETE',
      path: '/api-keys/:id',
      scope: s.SCOPES.write,
      summary: 'Revoke an API key: every instance refuses it within API_KEY_REVOCATION_SECONDS',
      params: { id: anyKeyIdSchema },
      responses: {
        200: { description: 'revoked (again)', schema: s.keyViewSchema },
        ...appProblems,
        404: problem('no such key'),
        409: problem('a bootstrap key: remove it from the Secret instead'),
        503: problem('MongoDB is unavailable'),
      },
      async handle(request, ctx) {
        return { status: 200, body: await revokeKey(request.params.id!, callerOf(request), deps, ctx) };
      },
    }),
  ];
}

/** The api-keys function: the key API and its OpenAPI document; its own routes need keys like any other. */
export function createApiKeysApp(
  deps: KeyDeps,
  options: { logger: Logger; authorize: Authorizer; health: Record<string, () => Promise<unknown>> },
): FunctionHandler {
  const operations = apiKeyOperations(deps);
  return createFunctionApp({
    service: s.SERVICE,
    logger: options.logger,
    routes: [
      ...operations,
      openApiRoute(
        { title: 'kiot api-keys', version: '1.0.0', description: 'Managed app API keys: create, list, read, revoke.' },
        operations,
      ),
    ],
    authorize: options.authorize,
    health: options.health,
    // No event is ever for this function: it refuses every CloudEvent (403 events_not_accepted).
    role: 'app',
  });
}
