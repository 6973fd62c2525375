import { AppError, ConflictError, DomainRefusalError, RateLimitedError } from '../../shared/errors.js';

/**
 * A device over its rate. On the event path it is a 422: Knative retries a 429 (eventing delivery
 * spec), and a retried excess message would come back while the device keeps sending, so the excess
 * is refused for good, dead-lettered and reported on the device's errors topic. The HTTP ingest turns
 * it into a 429 with Retry-After, which is what an HTTP client expects (RFC 6585 §4).
 */
export class RateLimitRefusal extends DomainRefusalError {
  constructor(
    readonly retryAfterMs: number,
    /** Whether the device is told this time (one notice per interval, so a flood is not doubled). */
    readonly notify: boolean,
  ) {
    super('rate_limited', `the device sends faster than its rate limit; retry in ${Math.ceil(retryAfterMs)} ms`, {
      retryAfterMs: Math.ceil(retryAfterMs),
    });
  }

  toHttp(): RateLimitedError {
    return new RateLimitedError(this.message, this.retryAfterMs / 1000);
  }
}

/** Another delivery of the same event is in progress: 409, which Knative retries later. */
export class EventInProgressError extends ConflictError {
  constructor(eventId: string) {
    super(`event ${eventId} is being processed by another delivery`, 'event_in_progress');
  }
}

export class UnknownDeviceError extends DomainRefusalError {
  constructor(deviceId: string) {
    super('unknown_device', `device ${deviceId} is not registered`);
  }
}

export class DisabledDeviceError extends DomainRefusalError {
  constructor(deviceId: string) {
    super('device_disabled', `device ${deviceId} is disabled`);
  }
}

/** A refusal the device must hear about: a permanent 4xx (not a retryable 409/429). */
export function isRejection(error: unknown): error is AppError {
  return error instanceof AppError && error.status >= 400 && error.status < 500 && !error.retryable;
}
