import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { parseCloudEvent } from '../../shared/cloudevents.js';
import { AppError, NotFoundError, PayloadTooLargeError, toProblem } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import type { BrokerCore } from './broker.js';
import type { DeadLetterFile } from './dead-letter-file.js';
import { audienceOf } from './event-policies.js';
import type { RouterMetrics } from './metrics.js';
import type { LocalIssuer } from './oidc.js';

export interface RouterHttpDeps {
  core: BrokerCore;
  deadLetters: DeadLetterFile;
  metrics: RouterMetrics;
  logger: Logger;
  brokers: () => string[];
  maxBodyBytes: number;
  /** Sender identity (Knative `authentication-oidc`): who may post to the ingress and to the dead-letter stand-in. */
  oidc?: {
    issuer: LocalIssuer;
    /** The subjects the Broker's EventPolicies allow. */
    brokerSenders(broker: string): string[];
    deadLetters: { audience: string; senders: string[] };
  };
}

interface Answer {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

function headerRecord(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) out[name] = Array.isArray(value) ? value.join(',') : value;
  }
  return out;
}

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new PayloadTooLargeError(limit, size);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function write(res: ServerResponse, answer: Answer): void {
  const headers = { ...answer.headers };
  let body: string | undefined;
  if (typeof answer.body === 'string') body = answer.body;
  else if (answer.body !== undefined) {
    body = JSON.stringify(answer.body);
    headers['content-type'] ??= 'application/json';
  }
  res.writeHead(answer.status, headers);
  res.end(body);
}

/**
 * The router's HTTP face:
 * - `POST /<namespace>/<broker>`: the broker ingress (Knative's path shape), 202 once accepted and journaled;
 * - `POST /dead-letters`, `GET /dead-letters`: a local stand-in for the dead-letter service;
 * - `GET /healthz`, `GET /metrics`.
 */
export function createRouterServer(deps: RouterHttpDeps): Server {
  async function route(req: IncomingMessage): Promise<Answer> {
    const path = new URL(req.url ?? '/', 'http://router.local').pathname;
    const method = req.method ?? 'GET';
    const segments = path.split('/').filter(Boolean).map(decodeURIComponent);
    const allow = (...methods: string[]) => {
      if (!methods.includes(method))
        throw new AppError(405, 'method_not_allowed', `${method} is not allowed on ${path}`);
    };

    if (path === '/healthz') {
      allow('GET');
      return { status: 200, body: { status: 'ok', service: 'router', brokers: deps.brokers() } };
    }
    if (path === '/metrics') {
      allow('GET');
      return {
        status: 200,
        body: await deps.metrics.registry.metrics(),
        headers: { 'content-type': deps.metrics.registry.contentType },
      };
    }
    if (deps.oidc && path === '/.well-known/openid-configuration') {
      allow('GET');
      const base = `http://${req.headers.host ?? 'router.local'}`;
      return {
        status: 200,
        body: {
          issuer: deps.oidc.issuer.issuer,
          jwks_uri: `${base}/openid/v1/jwks`,
          response_types_supported: ['id_token'],
          subject_types_supported: ['public'],
          id_token_signing_alg_values_supported: ['ES256'],
        },
      };
    }
    if (deps.oidc && path === '/openid/v1/jwks') {
      allow('GET');
      return { status: 200, body: deps.oidc.issuer.jwks(), headers: { 'content-type': 'application/jwk-set+json' } };
    }
    if (path === '/dead-letters') {
      allow('GET', 'POST');
      if (method === 'GET') return { status: 200, body: { records: await deps.deadLetters.list() } };
      if (deps.oidc) {
        const { audience, senders } = deps.oidc.deadLetters;
        await deps.oidc.issuer.verify(headerRecord(req), audience, senders);
      }
      const event = parseCloudEvent(headerRecord(req), await readBody(req, deps.maxBodyBytes));
      await deps.deadLetters.append({ reason: 'received', event });
      deps.logger.warn(
        { ce: { id: event.id, type: event.type, subject: event.subject }, destination: 'file' },
        'dead letter received',
      );
      return { status: 202 };
    }
    if (segments.length === 2) {
      // Knative broker ingress: POST only; anything else is 405.
      allow('POST');
      const broker = `${segments[0]}/${segments[1]}`;
      if (!deps.brokers().includes(broker)) throw new NotFoundError(`no broker ${broker}`, 'unknown_broker');
      // The producer's workload token, before anything of the event is read (Knative's ingress: 401/403).
      if (deps.oidc) {
        const audience = audienceOf('eventing.knative.dev/v1', 'Broker', segments[0]!, segments[1]!);
        await deps.oidc.issuer.verify(headerRecord(req), audience, deps.oidc.brokerSenders(broker));
      }
      const event = parseCloudEvent(headerRecord(req), await readBody(req, deps.maxBodyBytes));
      // 202 only once the event is durable (journaled): what the caller lets go of is never lost here.
      await deps.core.ingest(event, broker);
      return { status: 202 };
    }
    throw new NotFoundError(`no route for ${method} ${path}`);
  }

  return createServer((req, res) => {
    route(req).then(
      (answer) => write(res, answer),
      (error: unknown) => {
        const problem = toProblem(error);
        if (problem.status >= 500) deps.logger.error({ err: error, url: req.url }, 'request failed');
        // The rest of an unread body would otherwise be parsed as the next request on this connection.
        if (!req.complete) problem.headers.connection = 'close';
        write(res, { status: problem.status, body: problem.body, headers: problem.headers });
      },
    );
  });
}
