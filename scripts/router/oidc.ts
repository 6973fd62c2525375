import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  calculateJwkThumbprint,
  createLocalJWKSet,
  exportJWK,
  generateKeyPair,
  importJWK,
  type JWK,
  jwtVerify,
  SignJWT,
} from 'jose';
import { ForbiddenError, UnauthorizedError } from '../../shared/errors.js';
import { subjectAllowed } from '../../shared/event-auth.js';

/**
 * The cluster's part in Knative's sender identity, played locally by the router: it holds an issuer key (ES256,
 * like a cluster's service-account signing key), serves the JWKS and discovery document, mints the workload
 * tokens that Kubernetes would project into producer pods, signs the token of every delivery (the Trigger's
 * OIDC identity, the subscriber's audience) and verifies producers at the Broker ingress.
 */
export interface LocalIssuer {
  issuer: string;
  jwks(): { keys: JWK[] };
  /** A token for `subject` and `audience`, cached until 80 % of its life (Knative's token provider caches too). */
  token(subject: string, audience: string): Promise<string>;
  /** A fresh token with its own lifetime (workload tokens, tests). */
  mint(subject: string, audience: string, ttlSeconds: number): Promise<string>;
  /** The subject of a valid token for `audience` among `senders`, or 401/403 as Knative's receivers answer. */
  verify(headers: Record<string, string>, audience: string, senders: readonly string[]): Promise<string>;
}

const ALGORITHM = 'ES256';
const DELIVERY_TTL_SECONDS = 600;

async function loadOrCreateKey(file: string): Promise<JWK> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as JWK;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    const { privateKey } = await generateKeyPair(ALGORITHM, { extractable: true });
    const jwk = await exportJWK(privateKey);
    jwk.kid = await calculateJwkThumbprint(jwk);
    jwk.alg = ALGORITHM;
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, JSON.stringify(jwk), { mode: 0o600, flag: 'wx' }).catch(async (writeError: unknown) => {
      // Another process made it first: use theirs.
      if ((writeError as NodeJS.ErrnoException).code !== 'EEXIST') throw writeError;
    });
    return JSON.parse(await readFile(file, 'utf8')) as JWK;
  }
}

export async function createLocalIssuer(options: { keyFile: string; issuer: string }): Promise<LocalIssuer> {
  const privateJwk = await loadOrCreateKey(options.keyFile);
  const { d: _private, ...publicJwk } = privateJwk;
  const publicKeys = { keys: [{ ...publicJwk, use: 'sig', alg: ALGORITHM }] };
  const signingKey = await importJWK(privateJwk, ALGORITHM);
  const verifyKeys = createLocalJWKSet(publicKeys);
  const cache = new Map<string, { token: string; renewAt: number }>();

  const mint = (subject: string, audience: string, ttlSeconds: number) =>
    new SignJWT({})
      .setProtectedHeader({ alg: ALGORITHM, kid: privateJwk.kid!, typ: 'JWT' })
      .setIssuer(options.issuer)
      .setSubject(subject)
      .setAudience(audience)
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
      .sign(signingKey);

  return {
    issuer: options.issuer,
    jwks: () => publicKeys,
    mint,
    async token(subject, audience) {
      const key = `${subject}\n${audience}`;
      const hit = cache.get(key);
      if (hit && hit.renewAt > Date.now()) return hit.token;
      const token = await mint(subject, audience, DELIVERY_TTL_SECONDS);
      if (cache.size > 1_000) cache.clear();
      cache.set(key, { token, renewAt: Date.now() + DELIVERY_TTL_SECONDS * 800 });
      return token;
    },
    async verify(headers, audience, senders) {
      const token = /^Bearer\s+(\S+)\s*$/i.exec(headers.authorization ?? '')?.[1];
      if (!token) throw new UnauthorizedError('events need a sender token (Authorization: Bearer)');
      let subject: string | undefined;
      try {
        ({
          payload: { sub: subject },
        } = await jwtVerify(token, verifyKeys, {
          issuer: options.issuer,
          audience,
          requiredClaims: ['exp', 'sub'],
        }));
      } catch (error) {
        const code = (error as { code?: string }).code ?? 'ERR_INVALID_TOKEN';
        throw new UnauthorizedError(`the sender token is not valid here (${code})`);
      }
      if (!subject || !subjectAllowed(subject, senders))
        throw new ForbiddenError(`${subject ?? 'this sender'} may not send events here`);
      return subject;
    },
  };
}

/** A workload token file the router keeps fresh, as the kubelet does with a projected service account token. */
export interface WorkloadToken {
  file: string;
  serviceAccount: string;
  audience: string;
}

/** `file=serviceaccount@audience,…` (ROUTER_WORKLOAD_TOKENS). */
export function parseWorkloadTokens(text: string, dir: string): WorkloadToken[] {
  return text
    .split(/[\s,]+/)
    .filter(Boolean)
    .map((item) => {
      const match = /^([A-Za-z0-9._-]+)=([a-z0-9]([-a-z0-9]*[a-z0-9])?)@(\S+)$/.exec(item);
      if (!match) throw new Error(`"${item}" is not file=serviceaccount@audience`);
      return { file: join(dir, match[1]!), serviceAccount: match[2]!, audience: match[4]! };
    });
}

/** Writes every workload token now and again before it expires (1 h tokens, renewed every 20 min). */
export function keepWorkloadTokens(
  issuer: LocalIssuer,
  tokens: readonly WorkloadToken[],
  namespace: string,
  onError: (error: unknown) => void,
): { ready: Promise<void>; stop(): void } {
  const write = async () => {
    for (const token of tokens) {
      const jwt = await issuer.mint(`system:serviceaccount:${namespace}:${token.serviceAccount}`, token.audience, 3600);
      await mkdir(dirname(token.file), { recursive: true });
      const temporary = `${token.file}.${process.pid}.tmp`;
      await writeFile(temporary, jwt, { mode: 0o600 });
      await rename(temporary, token.file);
    }
  };
  const ready = write();
  const timer = setInterval(() => write().catch(onError), 20 * 60_000);
  timer.unref();
  return { ready, stop: () => clearInterval(timer) };
}
