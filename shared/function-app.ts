import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Request, Response } from '@google-cloud/functions-framework';
import { Registry } from 'prom-client';
import type { z } from 'zod';
import type { Principal } from './api-keys.js';
import { type CloudEvent, isCloudEventRequest, parseCloudEvent, toBinaryMessage } from './cloudevents.js';
import {
  AppError,
  ForbiddenError,
  InvalidInputError,
  NotFoundError,
  PayloadTooLargeError,
  toProblem,
} from './errors.js';
import type { EventAuthenticator } from './event-auth.js';
import { createFunctionMetrics } from './function-metrics.js';
import { joinInFlight } from './health-checks.js';
import { type CompiledRoute, compile, headerRecord, parseJsonBody, rawBodyOf, send, sendStream } from './http-io.js';
import type { Logger } from './logger.js';

export interface HandlerContext {
  logger: Logger;
  /** The id of this invocation: the CloudEvent id, or a generated request id. */
  invocationId: string;
  /** Adds fields to the one log line of this event (a batch's counts, say); absent outside an event. */
  annotate?(fields: Record<string, unknown>): void;
}

export interface HttpRequest {
  method: string;
  path: string;
  params: Record<string, string>;
  query: URLSearchParams;
  headers: Record<string, string>;
  /** The parsed JSON body; `undefined` when there is none. */
  body: unknown;
  rawBody: Buffer;
  /** For a route with `streamBody`: the request body as it arrives (never buffered whole). */
  stream?: Readable;
  /** Who made the request (the API key), once `authorize` accepted it; absent on public routes. */
  principal?: Principal;
}

export interface HttpResult {
  status: number;
  /**
   * JSON-serialised unless a string. A `Readable` or an `AsyncIterable` of string/Buffer
   * chunks (see `isStreamBody`) is streamed with backpressure: a large body never sits whole in memory.
   */
  body?: unknown;
  headers?: Record<string, string>;
}

/** Whether a route's body is to be streamed (a Node `Readable` or any async iterable of chunks). */
export function isStreamBody(body: unknown): body is Readable | AsyncIterable<string | Buffer> {
  return (
    typeof body === 'object' &&
    body !== null &&
    !Buffer.isBuffer(body) &&
    typeof (body as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function'
  );
}

export interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Express-like pattern: `/devices/:id/commands`. */
  path: string;
  /** The API-key scope this route needs (enforced by `authorize`). */
  scope?: string;
  /** `device`: the caller is a device with HTTP Basic (its id and secret), checked by `authorize`, not an app key. */
  security?: 'device';
  /**
   * The body is read by the handler from `request.stream` (an upload of any size), not buffered and parsed.
   * The server hands such requests over before the framework's body parsers (serve.ts).
   */
  streamBody?: boolean;
  handle(request: HttpRequest, ctx: HandlerContext): Promise<HttpResult>;
}

/** A CloudEvent the function consumes: its type, the zod schema of its `data`, and the use case. */
export interface EventRoute<S extends z.ZodType = z.ZodType> {
  type: string;
  data: S;
  /**
   * The level of the event's log line when it succeeds. `debug` for the per-message events of a hot path:
   * one line per device message would be gigabytes an hour at the evening peak; the metrics count them.
   */
  logLevel?: 'info' | 'debug';
  /** Resolves when the effect is durable. May return a reply event for the Broker. */
  // biome-ignore lint/suspicious/noConfusingVoidType: most use cases resolve with nothing; void lets them return their own Promise<void>
  handle(event: CloudEvent<unknown>, data: z.infer<S>, ctx: HandlerContext): Promise<CloudEvent<unknown> | void>;
}

/**
 * A catch-all for CloudEvents whose `type` has no `events` route: for a consumer of every type, such as a
 * dead-letter sink (Knative sends it whatever a Trigger failed to deliver).
 */
export type AnyEventRoute<S extends z.ZodType = z.ZodType> = Omit<EventRoute<S>, 'type'>;

export interface FunctionAppOptions {
  service: string;
  logger: Logger;
  routes?: Route[];
  events?: EventRoute[];
  /** Handles every event type that `events` does not name; without it such an event is a 400. */
  anyEvent?: AnyEventRoute;
  /** Checks for `/healthz`: each resolves when its dependency answers. */
  health?: Record<string, () => Promise<unknown>>;
  /** Called before every app route (before its body is read); throws 401/403 (the API-key middleware). */
  authorize?: (request: HttpRequest, route: Route) => Promise<Principal | undefined>;
  maxBodyBytes?: number;
  registry?: Registry;
  /**
   * Which audience this process serves (shared/event-auth.ts `FUNCTION_ROLE`): `app` refuses every CloudEvent
   * (the public Knative Service), `events` serves nothing but events, `/healthz` and `/metrics` (the
   * cluster-local one), `all` both (one local process).
   */
  role?: 'all' | 'app' | 'events';
  /** Verifies the sender of every CloudEvent before anything of it is parsed (`createEventAuthenticator`). */
  authenticateEvent?: EventAuthenticator;
}

export type FunctionHandler = ((req: Request, res: Response) => Promise<void>) & {
  /** Whether a request goes to a `streamBody` route: the server must not buffer its body. */
  streamsBody?: (method: string, path: string) => boolean;
  /** The largest body the server reads for it (serve.ts; 413 past it). */
  maxBodyBytes?: number;
  /**
   * Starts connecting to every store `/healthz` checks, without waiting: serve.ts calls it before the server
   * listens, so a function started from zero connects while the framework sets up (docs/performance.md).
   */
  connect?: () => void;
};

/**
 * The one HTTP entry of a capability. The functions framework gives every request to it; it serves
 * CloudEvents (binary or structured, routed by `type`), the app routes, `/healthz` and `/metrics`, and
 * maps every error to a status and a problem body in one place (`toProblem`).
 */
export function createFunctionApp(options: FunctionAppOptions): FunctionHandler {
  const { service, logger } = options;
  const maxBodyBytes = options.maxBodyBytes ?? 1_048_576;
  const routes = (options.routes ?? []).map(compile);
  const events = new Map((options.events ?? []).map((route) => [route.type, route]));
  const registry = options.registry ?? new Registry();
  const { eventCounter, eventDuration, httpCounter } = createFunctionMetrics(registry);
  const role = options.role ?? 'all';
  const health = joinInFlight(options.health ?? {});

  async function handleEvent(req: Request, res: Response, headers: Record<string, string>, raw: Buffer) {
    const started = performance.now();
    let event: CloudEvent<unknown> | undefined;
    let route: EventRoute | AnyEventRoute | undefined;
    let status = 500;
    let problem: ReturnType<typeof toProblem> | undefined;
    let senderSubject: string | undefined;
    let unexpected: unknown;
    const annotations: Record<string, unknown> = {};
    try {
      if (role === 'app') {
        throw new ForbiddenError(
          'this address serves the app API; events come only through the Broker',
          undefined,
          'events_not_accepted',
        );
      }
      if (req.method !== 'POST')
        throw new AppError(405, 'method_not_allowed', 'CloudEvents are POSTed', undefined, { allow: 'POST' });
      // The sender first: nothing of a forged event is parsed.
      senderSubject = (await options.authenticateEvent?.(headers))?.subject;
      if (raw.length > maxBodyBytes) throw new PayloadTooLargeError(maxBodyBytes, raw.length);
      // The framework's body parser read JSON bodies already (req.body): the event is built from that value.
      const body = (req as { body?: unknown }).body;
      const parsed =
        raw.length > 0 && typeof body === 'object' && body !== null && !Buffer.isBuffer(body)
          ? { value: body }
          : undefined;
      event = parseCloudEvent(headers, raw, parsed);
      route = events.get(event.type) ?? options.anyEvent;
      if (!route) {
        throw new InvalidInputError(`${service} does not consume ${event.type}`, undefined, 'unsupported_event_type');
      }
      const data = route.data.safeParse(event.data);
      if (!data.success) throw InvalidInputError.fromZod(data.error, `the data of ${event.type} is invalid`);
      const reply = await route.handle(event, data.data, {
        logger,
        invocationId: event.id,
        annotate: (fields) => Object.assign(annotations, fields),
      });
      if (reply) {
        const message = toBinaryMessage(reply);
        status = 200;
        send(res, 200, message.body, message.headers);
      } else {
        status = 204;
        send(res, 204, undefined);
      }
    } catch (error) {
      problem = toProblem(error);
      status = problem.status;
      // A bug (500): its cause and stack go into the event's line, or nobody can tell what happened.
      if (status === 500) unexpected = error;
      send(res, status, problem.body, problem.headers);
    } finally {
      const durationMs = Math.round((performance.now() - started) * 1000) / 1000;
      const type = event?.type ?? headers['ce-type'] ?? 'unknown';
      eventCounter.inc({ type, status });
      eventDuration.observe({ type }, durationMs / 1000);
      const level =
        status >= 500
          ? 'error'
          : status >= 400
            ? 'warn'
            : route && 'logLevel' in route && route.logLevel === 'debug'
              ? 'debug'
              : 'info';
      if (logger.isLevelEnabled(level)) {
        logger[level](
          {
            ce: { id: event?.id ?? headers['ce-id'], type, subject: event?.subject ?? headers['ce-subject'] },
            ...(senderSubject ? { sender: senderSubject } : {}),
            outcome: status < 300 ? 'ok' : status < 500 ? 'rejected' : 'failed',
            status,
            durationMs,
            ...annotations,
            ...(problem ? { error: problem.body.error } : {}),
            ...(unexpected === undefined ? {} : { err: unexpected }),
          },
          'event',
        );
      }
    }
  }

  async function handleHttp(req: Request, res: Response, headers: Record<string, string>, raw: Buffer) {
    const started = performance.now();
    const url = new URL(req.originalUrl ?? req.url, 'http://function.local');
    const path = url.pathname;
    let routeLabel = 'unmatched';
    let status = 500;
    let principal: Principal | undefined;
    try {
      if (path === '/healthz' && req.method === 'GET') {
        routeLabel = '/healthz';
        // Every store at once: a cold start's first check waits for the slowest connection, not for their sum.
        const entries = Object.entries(health);
        const outcomes = await Promise.allSettled(entries.map(([, check]) => check()));
        const checks: Record<string, string> = {};
        entries.forEach(([name], i) => {
          const outcome = outcomes[i]!;
          checks[name] =
            outcome.status === 'fulfilled' ? 'ok' : outcome.reason instanceof Error ? outcome.reason.message : 'failed';
        });
        const healthy = outcomes.every((outcome) => outcome.status === 'fulfilled');
        status = healthy ? 200 : 503;
        send(res, status, { status: healthy ? 'ok' : 'unavailable', service, checks });
        return;
      }
      if (path === '/metrics' && req.method === 'GET') {
        routeLabel = '/metrics';
        status = 200;
        send(res, 200, await registry.metrics(), { 'content-type': registry.contentType });
        return;
      }
      // The cluster-local event receiver serves no app route: the app API lives on the public Service.
      if (role === 'events') throw new NotFoundError(`no route for ${req.method} ${path}: this address takes events`);
      // A literal segment names its resource before a parameter does (`/devices/bulk` is not device "bulk"): the
      // most specific path that matches is the resource, and its methods are the ones served and listed by a 405.
      const matches = routes
        .map((compiled) => ({ compiled, match: compiled.pattern.exec(path) }))
        .filter(
          (candidate): candidate is { compiled: CompiledRoute; match: RegExpExecArray } => candidate.match !== null,
        );
      const specific = Math.min(...matches.map(({ compiled }) => compiled.names.length));
      const matching = matches.filter(({ compiled }) => compiled.names.length === specific);
      const chosen = matching.find(({ compiled }) => compiled.route.method === req.method);
      if (chosen) {
        const { compiled, match } = chosen;
        routeLabel = `${compiled.route.method} ${compiled.route.path}`;
        if (!compiled.route.streamBody && raw.length > maxBodyBytes)
          throw new PayloadTooLargeError(maxBodyBytes, raw.length);
        const params: Record<string, string> = {};
        compiled.names.forEach((name, index) => {
          try {
            params[name] = decodeURIComponent(match[index + 1]!);
          } catch {
            throw new InvalidInputError(
              `the path parameter ${name} is not valid percent-encoding`,
              undefined,
              'invalid_path_parameter',
            );
          }
        });
        const request: HttpRequest = {
          method: req.method,
          path,
          params,
          query: url.searchParams,
          headers,
          body: undefined,
          rawBody: raw,
          ...(compiled.route.streamBody ? { stream: req as unknown as Readable } : {}),
        };
        principal = (await options.authorize?.(request, compiled.route)) ?? undefined;
        if (principal) request.principal = principal;
        if (!compiled.route.streamBody) request.body = parseJsonBody(raw, headers);
        const result = await compiled.route.handle(request, {
          logger,
          invocationId: headers['x-request-id'] ?? randomUUID(),
        });
        status = result.status;
        if (isStreamBody(result.body))
          await sendStream(res, result.status, result.body, result.headers ?? {}, routeLabel, logger);
        else send(res, result.status, result.body, result.headers);
        return;
      }
      // RFC 9110 §15.5.6: a 405 lists the methods the resource does support.
      if (matching.length > 0) {
        const allow = [...new Set(matching.map(({ compiled }) => compiled.route.method))].sort().join(', ');
        throw new AppError(405, 'method_not_allowed', `${req.method} is not allowed on ${path}`, { allow }, { allow });
      }
      throw new NotFoundError(`no route for ${req.method} ${path}`);
    } catch (error) {
      const problem = toProblem(error);
      status = problem.status;
      if (status >= 500) logger.error({ err: error, route: routeLabel }, 'request failed');
      // An upload refused half-way: the rest of its body is never read, so the connection cannot carry another.
      const unread = (req as unknown as { complete?: boolean }).complete === false;
      send(res, status, problem.body, unread ? { ...problem.headers, connection: 'close' } : problem.headers);
    } finally {
      httpCounter.inc({ route: routeLabel, status });
      if (routeLabel !== '/healthz' && routeLabel !== '/metrics') {
        // Who did what: every request names the key that made it (an audit trail of every change).
        logger.info(
          {
            http: { method: req.method, route: routeLabel, status },
            ...(principal ? { keyId: principal.keyId } : {}),
            durationMs: Math.round(performance.now() - started),
          },
          'request',
        );
      }
    }
  }

  const handler: FunctionHandler = async (req, res) => {
    const headers = headerRecord(req);
    const raw = rawBodyOf(req);
    if (isCloudEventRequest(headers)) await handleEvent(req, res, headers, raw);
    else await handleHttp(req, res, headers, raw);
  };
  handler.maxBodyBytes = maxBodyBytes;
  // The health checks are what connects (each store's handle connects on first use); a failure here is only
  // the first attempt, and /healthz or the first request tries again.
  handler.connect = () => {
    // A check that throws or fails: /healthz reports it.
    for (const check of Object.values(health)) check().catch(() => undefined);
  };
  const streaming = routes.filter((compiled) => compiled.route.streamBody);
  if (streaming.length > 0) {
    handler.streamsBody = (method, path) =>
      streaming.some((compiled) => compiled.route.method === method && compiled.pattern.test(path));
  }
  return handler;
}

/** Declares an event route with its data type inferred from its schema. */
export function eventRoute<S extends z.ZodType>(route: EventRoute<S>): EventRoute {
  return route as unknown as EventRoute;
}
