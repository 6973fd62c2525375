import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { PUBLIC_SCOPE } from '../../shared/api-keys.js';
import { type DeviceDirectory, deviceIdSchema } from '../../shared/devices.js';
import { InvalidInputError, toProblem } from '../../shared/errors.js';
import type { HandlerContext, HttpRequest } from '../../shared/function-app.js';
import { queryObject } from '../../shared/http-io.js';
import { idempotencyKeyHeaderSchema, idempotencyKeySchema } from '../../shared/idempotency-key.js';
import { type ApiOperation, operation, problem, appProblems as problems } from '../../shared/openapi.js';
import type { ShadowStore } from '../../shared/shadow-store.js';
import type { IngestOutcome, ItemOutcome, TelemetryMessage } from './ingest-telemetry.js';
import type { PresenceRepository } from './presence-repository.js';
import { getDeviceState, queryTelemetry } from './queries.js';
import { RateLimitRefusal } from './refusals.js';
import {
  deviceStateSchema,
  ingestBatchResultSchema,
  ingestResultSchema,
  telemetryPageSchema,
  telemetryQuerySchema,
} from './schema.js';
import type { TelemetryRepository } from './telemetry-repository.js';

export interface DeviceRouteDeps {
  devices: DeviceDirectory;
  shadows: ShadowStore;
  presence: PresenceRepository;
  telemetry: TelemetryRepository;
  ingest(message: TelemetryMessage, ctx: HandlerContext): Promise<IngestOutcome>;
  ingestBatch(messages: TelemetryMessage[], ctx: HandlerContext): Promise<ItemOutcome[]>;
  /** Messages one batch POST may hold. */
  maxBatchMessages: number;
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

/** The request's Idempotency-Key, if it sent one (a malformed one is a 400). */
function idempotencyKeyOf(request: HttpRequest): string | undefined {
  const header = request.headers['idempotency-key'];
  if (header === undefined) return undefined;
  const parsed = idempotencyKeySchema.safeParse(header);
  if (!parsed.success) throw InvalidInputError.fromZod(parsed.error, 'the Idempotency-Key header is invalid');
  return parsed.data;
}

/** What a refused message of a batch POST answers in its item: the status and problem the single POST gives. */
function refusalOf(error: Parameters<typeof toProblem>[0]) {
  const problem = toProblem(error instanceof RateLimitRefusal ? error.toHttp() : error);
  return { status: problem.status, error: problem.body.error };
}

const INGEST_HEADERS = {
  'idempotency-key': {
    description: 'a retried POST with the same key is the same event(s); 1-255 visible ASCII',
    schema: idempotencyKeyHeaderSchema,
  },
};

export function deviceRoutes(deps: DeviceRouteDeps): ApiOperation[] {
  return [
    operation({
      method: 'GET',
      path: '/devices/:id/state',
      params: { id: deviceIdSchema },
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
      params: { id: deviceIdSchema },
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
      params: { id: deviceIdSchema },
      scope: PUBLIC_SCOPE,
      security: 'device',
      rules: ['the payload follows the telemetry rules and the device type schema (400/422)'],
      summary: 'HTTP ingest for devices without MQTT: HTTP Basic with the device id and its own secret',
      body: z.unknown(),
      headers: INGEST_HEADERS,
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
        const key = idempotencyKeyOf(request);
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
    operation({
      method: 'POST',
      path: '/devices/:id/telemetry/batch',
      params: { id: deviceIdSchema },
      scope: PUBLIC_SCOPE,
      security: 'device',
      summary:
        'HTTP ingest of many messages at once (a JSON array; each one what POST /devices/{id}/telemetry takes), with a result per message',
      body: batchBodySchema(deps.maxBatchMessages),
      headers: INGEST_HEADERS,
      responses: {
        200: {
          description: 'every message handled: stored, a duplicate, or refused (its status and problem in its item)',
          schema: ingestBatchResultSchema,
        },
        400: problem('not a JSON array of 1 to the maximum messages, or an invalid key'),
        401: problem('no valid device credential'),
        404: problem('unknown device'),
        413: problem('the payload is too large'),
        503: problem('a store is unavailable: nothing of the batch is lost by retrying it with the same key'),
      },
      async handle(request, ctx) {
        const deviceId = request.params.id ?? '';
        const key = idempotencyKeyOf(request);
        const payloads = batchBodySchema(deps.maxBatchMessages).safeParse(request.body);
        if (!payloads.success) throw InvalidInputError.fromZod(payloads.error, 'the batch is invalid');
        const receivedAt = new Date(deps.now());
        const batchId = randomUUID();
        // `http-batch:` ids never meet a single POST's `http:` ids; the position keeps each message apart.
        const messages = payloads.data.map((payload, index) => ({
          eventId: key === undefined ? `http-${batchId}-${index}` : `http-batch:${deviceId}:${index}:${key}`,
          deviceId,
          receivedAt,
          payload,
        }));
        const outcomes = await deps.ingestBatch(messages, ctx);
        const items = outcomes.map((outcome, index) => {
          const eventId = messages[index]!.eventId;
          if (outcome.outcome === 'refused')
            return { index, eventId, outcome: outcome.outcome, ...refusalOf(outcome.error) };
          return { index, eventId, status: 200, ...outcome };
        });
        const count = (outcome: string) => items.filter((item) => item.outcome === outcome).length;
        return {
          status: 200,
          body: { items, stored: count('stored'), duplicates: count('duplicate'), refused: count('refused') },
        };
      },
    }),
  ];
}

const batchBodySchemas = new Map<number, z.ZodType<unknown[]>>();
/** A JSON array of 1..max messages; built once per limit (zod compiles a schema on its first parse). */
function batchBodySchema(max: number): z.ZodType<unknown[]> {
  let schema = batchBodySchemas.get(max);
  if (!schema) {
    schema = z.array(z.unknown()).min(1).max(max);
    batchBodySchemas.set(max, schema);
  }
  return schema;
}
