import { createApiKeyLookup } from './api-key-store.js';
import { type ApiKeyEntry, type Authorizer, createApiKeyAuthorizer } from './api-keys.js';
import type { Logger } from './logger.js';
import type { MongoHandle } from './mongo.js';

/**
 * The API-key check of a function's app routes as every composition root wires it: the bootstrap keys of
 * the Secret, then the managed keys in MongoDB, a revocation reaching this instance within
 * `API_KEY_REVOCATION_SECONDS`.
 */
export function createAppAuthorizer(
  config: { API_KEYS: ApiKeyEntry[]; API_KEY_REVOCATION_SECONDS: number },
  mongo: MongoHandle,
  logger: Logger,
): Authorizer {
  return createApiKeyAuthorizer(config.API_KEYS, {
    lookup: createApiKeyLookup(mongo),
    recordTtlMs: config.API_KEY_REVOCATION_SECONDS * 1000,
    onTouchError: (error) => logger.warn({ err: error }, 'could not record the last use of an API key'),
  });
}
