import { type ApiKeyDocument, apiKeyStatus } from '../../shared/api-key-store.js';
import type { KeyView } from './schema.js';

const iso = (date: Date | undefined) => (date ? date.toISOString() : null);

/** A key as apps see it: status resolved against `now`, never the hash. */
export function keyView(doc: ApiKeyDocument, now: Date): KeyView {
  return {
    id: doc._id,
    name: doc.name,
    scopes: doc.scopes,
    status: apiKeyStatus(doc, now.getTime()),
    createdAt: doc.createdAt.toISOString(),
    createdBy: doc.createdBy,
    expiresAt: iso(doc.expiresAt),
    revokedAt: iso(doc.revokedAt),
    revokedBy: doc.revokedBy ?? null,
    lastUsedAt: iso(doc.lastUsedAt),
  };
}
