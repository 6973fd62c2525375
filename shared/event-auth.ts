import { readFileSync, statSync } from 'node:fs';
import { createRemoteJWKSet, customFetch, errors, type JWTVerifyGetKey, jwtVerify } from 'jose';
import { z } from 'zod';
import { httpUrl } from './config.js';
import { DependencyUnavailableError, ForbiddenError, UnauthorizedError } from './errors.js';

/**
 * Events only from the eventing plane, as Knative Eventing's sender identity does it (`authentication-oidc`,
 * knative.dev/eventing pkg/auth): every delivery carries `Authorization: Bearer <JWT>`, a Kubernetes service
 * account token that the sender requested for the receiver's audience. A receiver checks the signature against
 * the cluster's JWKS, the issuer, that the audience is its own, the expiry, and then (EventPolicy) that the
 * subject is one it accepts events from. Locally the router plays the cluster: it signs with a local key and
 * serves the JWKS (scripts/router/oidc.ts).
 */
export const KUBERNETES_ISSUER = 'https://kubernetes.default.svc';

const list = z
  .string()
  .default('')
  .transform((text) =>
    text
      .split(',')
      .map((item) => item.trim())
      .filter(Boolean),
  );

/** Config fields of every event receiver and producer (`baseConfigSchema.extend({ ...eventAuthFields })`). */
export const eventAuthFields = {
  /** `oidc`: refuse every CloudEvent without a valid token (the cluster's `authentication-oidc`); `off`: don't check. */
  EVENT_AUTH: z.enum(['oidc', 'off']).default('off'),
  /** What this process serves: the app API, the event receiver, or both (one Knative Service each, or one local process). */
  FUNCTION_ROLE: z.enum(['all', 'app', 'events']).default('all'),
  /** The tokens' `iss`: the cluster's service account issuer (`kubectl get --raw /.well-known/openid-configuration`). */
  EVENT_OIDC_ISSUER: z.string().min(1).default(KUBERNETES_ISSUER),
  /** Where the issuer's keys are: `https://kubernetes.default.svc/openid/v1/jwks` in a cluster, the router locally. */
  EVENT_OIDC_JWKS_URL: httpUrl.optional(),
  /** A bearer token for reading the JWKS from the API server (the pod's own service account token), if it needs one. */
  EVENT_OIDC_JWKS_TOKEN_FILE: z.string().min(1).optional(),
  /** The CA bundle of the JWKS endpoint (the cluster CA, `…/serviceaccount/ca.crt`), if not a public one. */
  EVENT_OIDC_CA_FILE: z.string().min(1).optional(),
  /** This receiver's audience (the Trigger's `subscriber.audience`); `<group>/<kind>/<namespace>/<name>` as Knative spells it. */
  EVENT_AUDIENCE: z.string().min(1).optional(),
  /** Who may send events here: token subjects, a trailing `*` matches any suffix (EventPolicy `from.sub`). */
  EVENT_SENDERS: list,
  /** The producer's workload identity token for the Broker (a projected service account token; re-read as it rotates). */
  EVENT_TOKEN_FILE: z.string().min(1).optional(),
  /** The workload token for the dead-letter sink's audience, for a producer that posts there directly. */
  DEAD_LETTER_TOKEN_FILE: z.string().min(1).optional(),
};

type EventAuthConfig = {
  EVENT_AUTH: 'oidc' | 'off';
  EVENT_OIDC_ISSUER: string;
  EVENT_OIDC_JWKS_URL?: string | undefined;
  EVENT_OIDC_JWKS_TOKEN_FILE?: string | undefined;
  EVENT_OIDC_CA_FILE?: string | undefined;
  EVENT_AUDIENCE?: string | undefined;
  EVENT_SENDERS: string[];
};

/** What `EVENT_AUTH=oidc` needs besides its defaults: checked once at start, so a bad revision never gets ready. */
export function eventAuthIssues(config: EventAuthConfig): string[] {
  if (config.EVENT_AUTH !== 'oidc') return [];
  const issues: string[] = [];
  if (!config.EVENT_OIDC_JWKS_URL) issues.push('EVENT_OIDC_JWKS_URL is required with EVENT_AUTH=oidc');
  if (!config.EVENT_AUDIENCE) issues.push('EVENT_AUDIENCE is required with EVENT_AUTH=oidc');
  if (config.EVENT_SENDERS.length === 0) issues.push('EVENT_SENDERS is required with EVENT_AUTH=oidc');
  return issues;
}

/** Whether `subject` matches one of the patterns (exact, or a prefix before a trailing `*`). */
export function subjectAllowed(subject: string, patterns: readonly string[]): boolean {
  return patterns.some((pattern) =>
    pattern.endsWith('*') ? subject.startsWith(pattern.slice(0, -1)) : subject === pattern,
  );
}

/** The verified sender of an event. */
export interface EventSender {
  subject: string;
}

export type EventAuthenticator = (headers: Record<string, string>) => Promise<EventSender | undefined>;

/** The bearer token of an `Authorization` header (RFC 6750 §2.1). */
function bearerOf(headers: Record<string, string>): string | undefined {
  return /^Bearer\s+(\S+)\s*$/i.exec(headers.authorization ?? '')?.[1];
}

/** A fetch for the JWKS with the cluster CA and the pod's token, when the API server asks for them. */
function jwksFetch(config: EventAuthConfig) {
  if (!config.EVENT_OIDC_CA_FILE && !config.EVENT_OIDC_JWKS_TOKEN_FILE) return undefined;
  return async (
    url: string,
    options: { headers: Headers; signal: AbortSignal; method: string; redirect: 'manual' },
  ) => {
    const { Agent, fetch } = await import('undici');
    const ca = config.EVENT_OIDC_CA_FILE ? readFileSync(config.EVENT_OIDC_CA_FILE, 'utf8') : undefined;
    const headers: Record<string, string> = Object.fromEntries(options.headers.entries());
    if (config.EVENT_OIDC_JWKS_TOKEN_FILE)
      headers.authorization = `Bearer ${readFileSync(config.EVENT_OIDC_JWKS_TOKEN_FILE, 'utf8').trim()}`;
    return fetch(url, {
      ...options,
      headers,
      ...(ca ? { dispatcher: new Agent({ connect: { ca } }) } : {}),
    }) as unknown as Promise<Response>;
  };
}

/**
 * The receiver's check, or `undefined` when `EVENT_AUTH=off`. 401 (with `WWW-Authenticate: Bearer`) for no token
 * or one that fails signature, issuer, audience or expiry; 403 for a valid token of a subject not allowed here —
 * the answers of Knative's own receivers (knative/eventing#7290). Keys are fetched once and again only for an
 * unknown `kid` (jose's remote JWKS cache), so a rotated cluster key is picked up without a restart.
 */
export function createEventAuthenticator(
  config: EventAuthConfig,
  options: { keys?: JWTVerifyGetKey; clockToleranceSeconds?: number } = {},
): EventAuthenticator | undefined {
  if (config.EVENT_AUTH !== 'oidc') return undefined;
  const issues = eventAuthIssues(config);
  if (issues.length > 0) throw new Error(issues.join('; '));
  const fetchImpl = jwksFetch(config);
  const keys =
    options.keys ??
    createRemoteJWKSet(new URL(config.EVENT_OIDC_JWKS_URL!), {
      cooldownDuration: 5_000,
      ...(fetchImpl ? { [customFetch]: fetchImpl } : {}),
    });
  const audience = config.EVENT_AUDIENCE!;
  return async (headers) => {
    const token = bearerOf(headers);
    if (!token) throw new UnauthorizedError('events need a sender token (Authorization: Bearer)');
    let subject: string | undefined;
    try {
      const { payload } = await jwtVerify(token, keys, {
        issuer: config.EVENT_OIDC_ISSUER,
        audience,
        requiredClaims: ['exp', 'sub'],
        clockTolerance: options.clockToleranceSeconds ?? 5,
      });
      subject = payload.sub;
    } catch (error) {
      // A JWKS we cannot reach is our fault, not the sender's: 503, so the Broker retries.
      if (error instanceof errors.JWKSTimeout || (error instanceof Error && error.name === 'TypeError'))
        throw new DependencyUnavailableError('the OIDC JWKS', error);
      const reason = error instanceof errors.JOSEError ? error.code : 'ERR_INVALID_TOKEN';
      throw new UnauthorizedError(`the sender token is not valid here (${reason})`);
    }
    if (!subject || !subjectAllowed(subject, config.EVENT_SENDERS))
      throw new ForbiddenError(`${subject ?? 'this sender'} may not send events here`);
    return { subject };
  };
}

/**
 * A producer's token, read from its file (a projected service account token that the kubelet rotates, or the
 * file the local router writes) and read again at most every `recheckMs` when the file changed.
 */
export function createTokenSource(file: string | undefined, recheckMs = 10_000): () => string | undefined {
  if (!file) return () => undefined;
  let token: string | undefined;
  let mtimeMs = -1;
  let checkedAt = Number.NEGATIVE_INFINITY;
  return () => {
    const now = Date.now();
    if (now - checkedAt < recheckMs) return token;
    checkedAt = now;
    try {
      const stat = statSync(file);
      if (stat.mtimeMs !== mtimeMs) {
        token = readFileSync(file, 'utf8').trim() || undefined;
        mtimeMs = stat.mtimeMs;
      }
    } catch {
      token = undefined;
      mtimeMs = -1;
    }
    return token;
  };
}

/** The `Authorization` header of a producer's POST, when it has a token. */
export function bearerHeader(token: () => string | undefined): () => Record<string, string> {
  return (): Record<string, string> => {
    const value = token();
    return value ? { authorization: `Bearer ${value}` } : {};
  };
}

/** What a composition root wires from `eventAuthFields`: the app's role and check, the emitter's headers. */
export function eventPlaneOf(
  config: EventAuthConfig & { FUNCTION_ROLE: 'all' | 'app' | 'events'; EVENT_TOKEN_FILE?: string | undefined },
) {
  const authenticateEvent = createEventAuthenticator(config);
  return {
    role: config.FUNCTION_ROLE,
    ...(authenticateEvent ? { authenticateEvent } : {}),
    producerHeaders: bearerHeader(createTokenSource(config.EVENT_TOKEN_FILE)),
  };
}
