import { randomBytes } from 'node:crypto';
import { generateSecret, hashGeneratedSecret } from '../../../shared/secrets.js';
import type { RegistryDeps } from '../deps.js';
import type { TokenDocument } from '../provisioning-repository.js';
import type { CreateTokenInput } from '../schema.js';

/** `kpt_<tokenId>_<secret>`: the id (hex, no `_`) finds the record, the secret is checked against its hash. */
export function parseClaimToken(token: string): { tokenId: string; secret: string } | undefined {
  const match = /^kpt_([0-9a-f]{16})_([A-Za-z0-9_-]{22,128})$/.exec(token);
  return match ? { tokenId: match[1]!, secret: match[2]! } : undefined;
}

export async function createProvisioningToken(input: CreateTokenInput, deps: RegistryDeps) {
  const tokenId = randomBytes(8).toString('hex');
  const secret = generateSecret();
  const now = deps.now();
  const token: TokenDocument = {
    _id: tokenId,
    hash: hashGeneratedSecret(secret),
    expiresAt: new Date(now.getTime() + input.ttlSeconds * 1_000),
    maxUses: input.maxUses,
    uses: 0,
    remaining: input.maxUses,
    ...(input.type === undefined ? {} : { type: input.type }),
    tags: input.tags,
    createdAt: now,
  };
  await deps.provisioning.insertToken(token);
  return {
    id: tokenId,
    token: `kpt_${tokenId}_${secret}`,
    expiresAt: token.expiresAt.toISOString(),
    maxUses: token.maxUses,
  };
}
