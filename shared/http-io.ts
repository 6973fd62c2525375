import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Request, Response } from '@google-cloud/functions-framework';
import { AppError, InvalidInputError } from './errors.js';
import type { Route } from './function-app.js';
import type { Logger } from './logger.js';

// Reading requests and writing answers for createFunctionApp: routes, headers, bodies.

export interface CompiledRoute {
  route: Route;
  pattern: RegExp;
  names: string[];
}

export function compile(route: Route): CompiledRoute {
  const names: string[] = [];
  const source = route.path
    .split('/')
    .map((segment) => {
      if (!segment.startsWith(':')) return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      names.push(segment.slice(1));
      return '([^/]+)';
    })
    .join('/');
  return { route, pattern: new RegExp(`^${source}/?$`), names };
}

export function headerRecord(req: Request): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) out[name] = Array.isArray(value) ? value.join(',') : value;
  }
  return out;
}

export function rawBodyOf(req: Request): Buffer {
  const raw = (req as Request & { rawBody?: Buffer }).rawBody;
  if (raw) return raw;
  if (typeof req.body === 'string') return Buffer.from(req.body);
  if (Buffer.isBuffer(req.body)) return req.body;
  return Buffer.alloc(0);
}

export function parseJsonBody(raw: Buffer, headers: Record<string, string>): unknown {
  if (raw.length === 0) return undefined;
  const type = (headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json' && !type.endsWith('+json')) {
    throw new AppError(415, 'unsupported_media_type', 'send the body as application/json');
  }
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    throw new InvalidInputError('the body is not valid JSON', undefined, 'invalid_json');
  }
}

export function send(res: Response, status: number, body: unknown, headers: Record<string, string> = {}): void {
  // statusCode, not Express's res.status(): a streamed upload reaches the handler on a plain Node response.
  res.statusCode = status;
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  if (body === undefined) {
    res.end();
  } else if (Buffer.isBuffer(body)) {
    res.end(body);
  } else if (typeof body === 'string') {
    if (!res.getHeader('content-type')) res.setHeader('content-type', 'text/plain; charset=utf-8');
    res.end(body);
  } else {
    res.setHeader('content-type', headers['content-type'] ?? 'application/json');
    res.end(JSON.stringify(body));
  }
}

/**
 * Streams a body. A failure before the first chunk throws (the caller answers with a problem body); once
 * the status is sent, a failure can only cut the response short, which the client sees as incomplete.
 */
export async function sendStream(
  res: Response,
  status: number,
  body: Readable | AsyncIterable<string | Buffer>,
  headers: Record<string, string>,
  route: string,
  logger: Logger,
): Promise<void> {
  const iterator = body[Symbol.asyncIterator]();
  const first = await iterator.next();
  res.statusCode = status;
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  if (!res.getHeader('content-type')) res.setHeader('content-type', 'application/octet-stream');
  async function* chunks() {
    try {
      for (let next = first; !next.done; next = await iterator.next()) yield next.value;
    } finally {
      // A client that goes away ends the source too (a database cursor is closed, not left open).
      await iterator.return?.();
    }
  }
  try {
    await pipeline(Readable.from(chunks()), res);
  } catch (error) {
    // A client that leaves (a closed tab, a live stream given up) is no failure of ours.
    if ((error as { code?: string }).code === 'ERR_STREAM_PREMATURE_CLOSE')
      logger.debug({ route }, 'the client closed a streamed response');
    else logger.error({ err: error, route }, 'streamed response failed');
    res.destroy(error instanceof Error ? error : undefined);
  }
}

/**
 * A request's query as the object its schema parses: a parameter given once is its value; one given more than once
 * is the list of its values, so a schema that wants one value refuses it (400) instead of silently taking the first
 * or the last (RFC 3986 §3.4 leaves repetition to the application; schemathesis' ST201 found `GET /presence` taking
 * the first of several `offset`s). The parameters in `repeated` may be repeated: always a list.
 */
export function queryObject(query: URLSearchParams, repeated: readonly string[] = []): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of new Set(query.keys())) {
    const values = query.getAll(key);
    out[key] = values.length > 1 || repeated.includes(key) ? values : values[0];
  }
  return out;
}
