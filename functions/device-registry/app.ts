import { z } from 'zod';
import type { Authorizer } from '../../shared/api-keys.js';
import { DependencyUnavailableError, InvalidInputError } from '../../shared/errors.js';
import type { EventAuthenticator } from '../../shared/event-auth.js';
import { createFunctionApp, eventRoute, type FunctionHandler } from '../../shared/function-app.js';
import type { Logger } from '../../shared/logger.js';
import { openApiRoute } from '../../shared/openapi.js';
import type { RegistryDeps } from './deps.js';
import { registryOperations } from './http-routes.js';
import { provisioningRequestSchema, requestIdSchema, SERVICE } from './schema.js';
import { provisionDevice, refuseInvalidRequest } from './use-cases/provision-device.js';

export const PROVISIONING_REQUESTED = 'io.kiot.provisioning.requested';
export const PING = 'dev.knative.sources.ping';

/** The registry's one HTTP entry: app routes with API keys, `/openapi.json`, and the provisioning event. */
export function createRegistryApp(
  deps: RegistryDeps,
  options: {
    logger: Logger;
    authorize: Authorizer;
    health: Record<string, () => Promise<unknown>>;
    role?: 'all' | 'app' | 'events';
    authenticateEvent?: EventAuthenticator;
  },
): FunctionHandler {
  const operations = registryOperations(deps);
  return createFunctionApp({
    service: SERVICE,
    logger: options.logger,
    routes: [
      ...operations,
      openApiRoute(
        {
          title: 'kiot device-registry',
          version: '1.0.0',
          description: 'Devices, credentials, fleet provisioning and broker auth hooks.',
        },
        operations,
      ),
    ],
    authorize: options.authorize,
    ...(options.role ? { role: options.role } : {}),
    ...(options.authenticateEvent ? { authenticateEvent: options.authenticateEvent } : {}),
    health: options.health,
    events: [
      eventRoute({
        type: PROVISIONING_REQUESTED,
        // Parsed in the handler, not here: a device that sent a malformed request still hears why.
        data: z.unknown(),
        async handle(event, data, ctx) {
          const requestId = requestIdSchema.safeParse(
            event.subject ?? (data as { requestId?: unknown } | null)?.requestId,
          );
          if (!requestId.success)
            throw InvalidInputError.fromZod(requestId.error, 'the provisioning request id (subject) is invalid');
          const request = provisioningRequestSchema.safeParse(data);
          if (!request.success) await refuseInvalidRequest(requestId.data, request.error, deps);
          else await provisionDevice(requestId.data, request.data, deps, ctx);
        },
      }),
      eventRoute({
        // knative/device-registry/ping-source-outbox.yaml: a scaled-to-zero registry has no timer, so a tick
        // flushes device events that a sink outage left in the outbox. A failed flush answers 503 (retried).
        type: PING,
        data: z.unknown(),
        async handle(_event, _data, ctx) {
          const result = await deps.outbox.flush();
          ctx.logger.debug({ outbox: result }, 'outbox tick');
          if (result.failed) throw new DependencyUnavailableError('event sink');
        },
      }),
    ],
  });
}
