import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { PUBLIC_SCOPE } from '../../shared/api-keys.js';
import type { DeviceAuthenticator } from '../../shared/device-auth.js';
import { type DeviceDirectory, deviceIdSchema } from '../../shared/devices.js';
import { InvalidInputError } from '../../shared/errors.js';
import type { HandlerContext, HttpRequest } from '../../shared/function-app.js';
import { idempotencyKeySchema } from '../../shared/idempotency-key.js';
import { type ApiOperation, operation, problem, appProblems as problems } from '../../shared/openapi.js';
import type { ShadowStore } from '../../shared/shadow.js';
import type { IngestOutcome, TelemetryMessage } from './ingest-telemetry.js';
import type { PresenceRepository } from './presence-repository.js';
import { getDeviceState, queryTelemetry } from './queries.js';
import { RateLimitRefusal } from './refusals.js';
import {
  deviceStateSchema,
  ingestResultSchema,
  queryObject,
  telemetryPageSchema,
  telemetryQuerySchema,
} from './schema.js';
import type { TelemetryRepository } from './telemetry-repository.js';

export interface DeviceRouteDeps {
  devices: DeviceDirectory;
  shadows: ShadowStore;
  presence: PresenceRepository;
  telemetry: TelemetryRepository;
  deviceAuth: DeviceAuthenticator;
  ingest(message: TelemetryMessage, ctx: HandlerContext): Promise<IngestOutcome>;
  now(): number;
  /** Default window of a telemetry query: the last day. */
  defaultWindowMs?: number;
}

function deviceIdOf(request: HttpRequest): string {
  const parsed = deviceIdSchema.safeParse(request.params.id);
  if (!parsed.success) throw InvalidInputError.fromZod(parsed.error, 'the device id is invalid');
  return parsed.data;
}

const toDate = (value: string | number) => new Date(typeof value === 'number' ? value : Date.parse(value));

export function deviceRoutes(deps: DeviceRouteDeps): ApiOperation[] {
  return [
    operation({
      method: 'GET',
      path: '/devices/:id/state',
      scope: 'telemetry:read',
      summary: 'The device shadow (reported, desired, delta, version) and presence',
      responses: {
        200: { description: 'shadow and presence', schema: deviceStateSchema },
        ...problems,
        404: problem('unknown device'),
      },
      handle: async (request) => ({ status: 200, body: await getDeviceState(deviceIdOf(request), deps) }),
    }),
    operation({
      method: 'GET',
      path: '/devices/:id/telemetry',
      scope: 'telemetry:read',
      summary: 'Raw samples by time range (default: the last day) and metric; cursor pagination',
      query: telemetryQuerySchema,
      responses: {
        200: { description: 'a page of samples in time order', schema: telemetryPageSchema },
        ...problems,
        404: problem('unknown device'),
      },
      async handle(request) {
        const deviceId = deviceIdOf(request);
        const query = telemetryQuerySchema.safeParse(queryObject(request.query, ['metric']));
        if (!query.success) throw InvalidInputError.fromZod(query.error, 'the query is invalid');
        const to = query.data.to === undefined ? new Date(deps.now() + 1) : toDate(query.data.to);
        const from =
          query.data.from === undefined
            ? new Date(to.getTime() - (deps.defaultWindowMs ?? 86_400_000))
            : toDate(query.data.from);
        const page = await queryTelemetry(
          {
            deviceId,
            from,
            to,
            metrics: query.data.metric,
            limit: query.data.limit,
            ...(query.data.cursor ? { cursor: query.data.cursor } : {}),
          },
          deps,
        );
        return { status: 200, body: page };
      },
    }),
    operation({
      // Devices authenticate themselves (HTTP Basic), not with an app API key.
      method: 'POST',
      path: '/devices/:id/telemetry',
      scope: PUBLIC_SCOPE,
      summary: 'HTTP ingest for devices without MQTT: HTTP Basic with the device id and its own secret',
      body: z.unknown(),
      headers: {
        authorization: { description: 'Basic base64(deviceId:secret)', required: true },
        'idempotency-key': { description: 'a retried POST with the same key is one event; 1-255 visible ASCII' },
      },
      responses: {
        200: { description: 'stored (or a duplicate of a stored event)', schema: ingestResultSchema },
        400: problem('invalid payload or key'),
        401: problem('no valid device credential'),
        404: problem('unknown device'),
        413: problem('the payload is too large'),
        422: problem('the payload breaks the telemetry rules or the device type schema; the device is disabled'),
        429: problem('the device is over its rate limit'),
        503: problem('a store is unavailable'),
      },
      async handle(request, ctx) {
        const deviceId = request.params.id ?? '';
        await deps.deviceAuth.authenticate(deviceId, request.headers.authorization);
        const header = request.headers['idempotency-key'];
        const parsedKey = header === undefined ? undefined : idempotencyKeySchema.safeParse(header);
        if (parsedKey && !parsedKey.success)
          throw InvalidInputError.fromZod(parsedKey.error, 'the Idempotency-Key header is invalid');
        const key = parsedKey?.data;
        // With a key, a retried POST is the same event and is stored once (like a redelivered MQTT message).
        const eventId = key === undefined ? `http-${randomUUID()}` : `http:${deviceId}:${key}`;
        try {
          const result = await deps.ingest(
            { eventId, deviceId, receivedAt: new Date(deps.now()), payload: request.body },
            ctx,
          );
          return { status: 200, body: { eventId, ...result } };
        } catch (error) {
          throw error instanceof RateLimitRefusal ? error.toHttp() : error;
        }
      },
    }),
  ];
}
