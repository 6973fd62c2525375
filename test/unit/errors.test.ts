import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  AppError,
  ConflictError,
  DependencyUnavailableError,
  DomainRefusalError,
  ForbiddenError,
  InvalidInputError,
  isRetryableStatus,
  NotFoundError,
  PayloadTooLargeError,
  PreconditionFailedError,
  RateLimitedError,
  toProblem,
  UnauthorizedError,
} from '../../shared/errors.js';

describe('toProblem: the one mapping from errors to HTTP, by Knative retry rules', () => {
  const schemaError = z.object({ a: z.number() }).safeParse({ a: 'x' });
  it.each([
    [new InvalidInputError('bad'), 400, 'invalid_input', false],
    [InvalidInputError.fromZod(schemaError.error!), 400, 'invalid_input', false],
    [new UnauthorizedError(), 401, 'unauthorized', false],
    [new ForbiddenError('no scope'), 403, 'forbidden', false],
    [new NotFoundError('none'), 404, 'not_found', true],
    [new ConflictError('dup'), 409, 'conflict', true],
    [new PreconditionFailedError('version'), 412, 'precondition_failed', false],
    [new PayloadTooLargeError(10, 20), 413, 'payload_too_large', false],
    [new DomainRefusalError('unknown_device', 'no such device'), 422, 'unknown_device', false],
    [new RateLimitedError('slow down', 2), 429, 'rate_limited', true],
    [new DependencyUnavailableError('mongodb'), 503, 'dependency_unavailable', true],
    [new Error('boom'), 500, 'internal', true],
    ['a string thrown', 500, 'internal', true],
  ])('%s → %i %s', (error, status, code, retryable) => {
    const problem = toProblem(error);
    expect(problem.status).toBe(status);
    expect(problem.body.error.code).toBe(code);
    expect(isRetryableStatus(problem.status)).toBe(retryable);
    if (error instanceof AppError) expect(error.retryable).toBe(retryable);
    expect(JSON.stringify(problem.body)).not.toMatch(/at .*\(.*:\d+:\d+\)/);
  });

  it('carries zod issues as details with path, code and message', () => {
    const problem = toProblem(InvalidInputError.fromZod(schemaError.error!));
    expect(problem.body.error.details).toEqual([{ path: 'a', code: 'invalid_type', message: expect.any(String) }]);
  });

  it('never leaks the message of an unexpected error', () => {
    expect(toProblem(new Error('password=hunter2')).body.error.message).not.toContain('hunter2');
  });

  it('sets Retry-After on 429 and WWW-Authenticate on 401', () => {
    expect(toProblem(new RateLimitedError('x', 1.2)).headers['retry-after']).toBe('2');
    expect(toProblem(new UnauthorizedError()).headers['www-authenticate']).toBe('Bearer');
  });

  it.each([
    [200, false],
    [400, false],
    [404, true],
    [408, true],
    [409, true],
    [410, false],
    [429, true],
    [500, true],
    [503, true],
  ])('status %i retryable=%s', (status, retryable) => expect(isRetryableStatus(status)).toBe(retryable));
});
