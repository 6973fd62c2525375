import { z } from 'zod';
import type { Destination } from './manifest-schema.js';

/**
 * Where the Services of the cluster listen on this machine: `name=url` (any namespace) or
 * `namespace/name=url`, separated by commas or whitespace. The stand-in for Kubernetes DNS.
 */
export type ServiceMap = ReadonlyMap<string, string>;

const entrySchema = z.object({
  key: z
    .string()
    .regex(/^(?:[a-z0-9]([-a-z0-9]*[a-z0-9])?\/)?[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'a Service name or namespace/name'),
  url: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }),
});

export const serviceMapSchema = z.string().transform((text, ctx): ServiceMap => {
  const map = new Map<string, string>();
  for (const item of text.split(/[\s,]+/).filter(Boolean)) {
    const separator = item.indexOf('=');
    const parsed = entrySchema.safeParse({ key: item.slice(0, separator), url: item.slice(separator + 1) });
    if (separator < 1 || !parsed.success) {
      ctx.addIssue({ code: 'custom', message: `"${item}" is not name=http://host:port (or namespace/name=…)` });
      continue;
    }
    map.set(parsed.data.key, parsed.data.url);
  }
  return map;
});

/** A destination the router can send to, or why it cannot (kept so that events still get a dead-letter record). */
export type ResolvedDestination = { url: string } | { unresolved: string };

/** Kinds a local URL can stand in for: Kubernetes Services and Knative Services (both Addressable by name). */
const SERVICE_API_VERSIONS = new Set(['v1', 'serving.knative.dev/v1']);

export class UnsupportedDestinationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsupportedDestinationError';
  }
}

function isAbsoluteHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.host !== '';
  } catch {
    return false;
  }
}

/**
 * In a cluster a function that receives events is two Knative Services from one image: the public app Service
 * `<name>` (FUNCTION_ROLE=app) and the cluster-local `<name>-events` its Triggers address (FUNCTION_ROLE=events;
 * knative/deploy-values.json). Locally one process serves both roles (FUNCTION_ROLE=all), so an unmapped
 * `<name>-events` Knative Service resolves to `<name>`'s URL.
 */
function localProcessOf(ref: { apiVersion: string; name: string }): string {
  return ref.apiVersion === 'serving.knative.dev/v1' && ref.name.endsWith(EVENTS_SUFFIX)
    ? ref.name.slice(0, -EVENTS_SUFFIX.length)
    : ref.name;
}
const EVENTS_SUFFIX = '-events';

/**
 * Resolves a duckv1.Destination the way Knative's URIResolver does: a `ref` gives the base URL (here from
 * the service map, namespace defaulting to the parent's), a `uri` next to a ref must be relative and is
 * resolved against it (RFC 3986, like Go's `URL.ResolveReference`), a lone `uri` must be absolute.
 * A kind the router cannot stand in for throws (a start-up error); an unmapped Service is `unresolved`.
 */
export function resolveDestination(
  destination: Destination,
  namespace: string,
  services: ServiceMap,
): ResolvedDestination {
  const { ref, uri } = destination;
  if (!ref) {
    if (!uri || !isAbsoluteHttpUrl(uri)) {
      throw new UnsupportedDestinationError(
        `uri ${JSON.stringify(uri)} is not absolute (scheme and host are required)`,
      );
    }
    return { url: uri };
  }
  if (ref.kind !== 'Service' || !SERVICE_API_VERSIONS.has(ref.apiVersion)) {
    throw new UnsupportedDestinationError(
      `ref ${ref.apiVersion}/${ref.kind} ${ref.name} is not supported locally; use a Service (v1 or serving.knative.dev/v1) or a uri`,
    );
  }
  if (uri !== undefined && isAbsoluteHttpUrl(uri)) {
    throw new UnsupportedDestinationError('an absolute uri is not allowed next to a ref');
  }
  const refNamespace = ref.namespace ?? namespace;
  const mapped = (name: string) => services.get(`${refNamespace}/${name}`) ?? services.get(name);
  const base = mapped(ref.name) ?? mapped(localProcessOf(ref));
  if (!base) return { unresolved: `Service ${refNamespace}/${ref.name} is not mapped in ROUTER_SERVICES` };
  return { url: uri === undefined ? base : new URL(uri, base).toString() };
}
