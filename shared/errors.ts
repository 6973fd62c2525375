import { z } from 'zod';

/** One issue of a rejected input, as zod reports it, safe to return and to store. */
export interface ProblemIssue {
  path: string;
  code: string;
  message: string;
}

/**
 * The one error family of kiot. Each error carries its HTTP status; `toProblem` is the only place that
 * turns errors into responses, so the Knative retry rules are applied in one spot.
 */
export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = new.target.name;
  }

  /** Whether Knative (and the bridge, and the local router) will deliver the event again. */
  get retryable(): boolean {
    return isRetryableStatus(this.status);
  }
}

/** Invalid envelope, body or data: 400, never retried, goes to the dead-letter sink. */
export class InvalidInputError extends AppError {
  constructor(message: string, details?: unknown, code = 'invalid_input') {
    super(400, code, message, details);
  }

  static fromZod(error: z.ZodError, message = 'the input does not match the schema'): InvalidInputError {
    return new InvalidInputError(message, zodIssues(error));
  }
}

/**
 * Expected failures are values (zod `safeParse`); at the edge of an app route they become one 400 problem
 * with the issues: "the <what> is invalid".
 */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown, what: string): z.infer<S> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw InvalidInputError.fromZod(parsed.error, `the ${what} is invalid`);
  return parsed.data;
}

export class PayloadTooLargeError extends AppError {
  constructor(limitBytes: number, actualBytes: number) {
    super(413, 'payload_too_large', `the payload is ${actualBytes} bytes, the limit is ${limitBytes}`, {
      limitBytes,
      actualBytes,
    });
  }
}

export class UnauthorizedError extends AppError {
  constructor(message = 'a valid API key is required') {
    super(401, 'unauthorized', message, undefined, { 'www-authenticate': 'Bearer' });
  }
}

export class ForbiddenError extends AppError {
  constructor(message: string, details?: unknown, code = 'forbidden') {
    super(403, code, message, details);
  }
}

/** A resource an app asked for does not exist. Only for app requests: Knative retries a 404. */
export class NotFoundError extends AppError {
  constructor(message: string, code = 'not_found') {
    super(404, code, message);
  }
}

/** A request the domain refuses (unknown or disabled device for an event): 422, never retried. */
export class DomainRefusalError extends AppError {
  constructor(code: string, message: string, details?: unknown) {
    super(422, code, message, details);
  }
}

/** A conflict that a retry can resolve, or a duplicate an app must see: 409. */
export class ConflictError extends AppError {
  constructor(message: string, code = 'conflict', details?: unknown) {
    super(409, code, message, details);
  }
}

export class PreconditionFailedError extends AppError {
  constructor(message: string, details?: unknown) {
    super(412, 'precondition_failed', message, details);
  }
}

export class RateLimitedError extends AppError {
  constructor(message: string, retryAfterSeconds?: number) {
    super(
      429,
      'rate_limited',
      message,
      retryAfterSeconds === undefined ? undefined : { retryAfterSeconds },
      retryAfterSeconds === undefined ? {} : { 'retry-after': String(Math.ceil(retryAfterSeconds)) },
    );
  }
}

/** A dependency (MongoDB, Redis, the broker, the sink) is down: 503, retried. */
export class DependencyUnavailableError extends AppError {
  constructor(dependency: string, cause?: unknown) {
    super(503, 'dependency_unavailable', `${dependency} is unavailable`, { dependency });
    if (cause !== undefined) this.cause = cause;
  }
}

/**
 * Knative's retry rules (eventing delivery spec): 5xx, 404, 408, 409 and 429 are retried, every
 * other 4xx goes to the dead-letter sink at once.
 */
export function isRetryableStatus(status: number): boolean {
  return status >= 500 || status === 404 || status === 408 || status === 409 || status === 429;
}

export function zodIssues(error: z.ZodError): ProblemIssue[] {
  return error.issues.map((issue) => ({
    path: issue.path.map(String).join('.'),
    code: issue.code,
    message: issue.message,
  }));
}

export interface Problem {
  status: number;
  headers: Record<string, string>;
  body: { error: { code: string; message: string; details?: unknown } };
}

/** The one mapping from any thrown value to an HTTP answer: small, never a stack trace. */
/** The JSON body of every 4xx/5xx answer (what `toProblem` writes), for API documents. */
export const problemSchema = z.object({
  error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }),
});

export function toProblem(error: unknown): Problem {
  if (error instanceof AppError) {
    const body: Problem['body'] = { error: { code: error.code, message: error.message } };
    if (error.details !== undefined) body.error.details = error.details;
    return { status: error.status, headers: error.headers, body };
  }
  return {
    status: 500,
    headers: {},
    body: { error: { code: 'internal', message: 'an unexpected error occurred; it will be retried' } },
  };
}
