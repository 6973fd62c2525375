import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { z } from 'zod';
import type { CloudEventV1 } from '../../shared/cloudevents.js';
import { type DeliveryPolicy, deliveryPolicyOf } from './delivery-policy.js';
import {
  type ResolvedDestination,
  resolveDestination,
  type ServiceMap,
  UnsupportedDestinationError,
} from './destinations.js';
import { audienceOf, oidcServiceAccount, subjectOf } from './event-policies.js';
import { compileTriggerFilter } from './filters.js';
import type { Destination } from './manifest-schema.js';
import {
  type BrokerManifest,
  brokerManifestSchema,
  type TriggerManifest,
  triggerManifestSchema,
} from './manifest-schema.js';

export interface TriggerRoute {
  /** `namespace/name`: the label of metrics and logs. */
  key: string;
  matches(event: CloudEventV1<unknown>): boolean;
  subscriber: ResolvedDestination;
  policy: DeliveryPolicy;
  /** The Trigger's OIDC identity, the token subject of its deliveries (Knative's per-Trigger service account). */
  identity: string;
  /** The OIDC audiences of its subscriber and dead-letter sink: `audience`, else derived from the `ref`. */
  audiences: { subscriber?: string; deadLetterSink?: string };
}

export interface BrokerRoute {
  key: string;
  triggers: TriggerRoute[];
}

/** What the router routes: Brokers by `namespace/name`, each with its Triggers. */
export interface Topology {
  brokers: Map<string, BrokerRoute>;
  /** Triggers whose subscriber or dead-letter sink has no local URL: their events go to the dead-letter file. */
  warnings: string[];
}

/** A manifest the router cannot use; names the file and the document so the fix is obvious. */
export class ManifestError extends Error {
  constructor(
    readonly file: string,
    readonly document: number,
    readonly issues: string[],
    what = '',
  ) {
    super(`${file}, document ${document}${what ? ` (${what})` : ''}: ${issues.join('; ')}`);
    this.name = 'ManifestError';
  }
}

interface Located<T> {
  manifest: T;
  file: string;
  document: number;
}

async function yamlFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const files: string[] = [];
  for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...(await yamlFiles(path)));
    else if (/\.ya?ml$/i.test(entry.name)) files.push(path);
  }
  return files;
}

function issuesOf(error: z.ZodError): string[] {
  return error.issues.map((issue) => `${issue.path.map(String).join('.') || '(root)'}: ${issue.message}`);
}

/** Step 1: every Broker and Trigger document under `dir` (multi-document YAML), validated. Others are ignored. */
export async function readManifests(
  dir: string,
): Promise<{ brokers: Located<BrokerManifest>[]; triggers: Located<TriggerManifest>[] }> {
  const brokers: Located<BrokerManifest>[] = [];
  const triggers: Located<TriggerManifest>[] = [];
  for (const path of await yamlFiles(dir)) {
    const fromCwd = relative(process.cwd(), path);
    const file = fromCwd && !fromCwd.startsWith('..') ? fromCwd : path;
    const documents = parseAllDocuments(await readFile(path, 'utf8'));
    const list = Array.isArray(documents) ? documents : [documents];
    for (const [index, document] of list.entries()) {
      const number = index + 1;
      if (document.errors.length > 0)
        throw new ManifestError(
          file,
          number,
          document.errors.map((e) => e.message),
          'YAML',
        );
      const value: unknown = document.toJS();
      if (typeof value !== 'object' || value === null) continue;
      const { apiVersion, kind, metadata } = value as {
        apiVersion?: unknown;
        kind?: unknown;
        metadata?: { name?: unknown };
      };
      // Only Knative Eventing's Brokers and Triggers route; a Tekton `Trigger` or a Service is not ours.
      if (typeof apiVersion !== 'string' || !apiVersion.startsWith('eventing.knative.dev/')) continue;
      if (kind !== 'Broker' && kind !== 'Trigger') continue;
      const what = `${kind} ${typeof metadata?.name === 'string' ? metadata.name : '(no name)'}`;
      const schema = kind === 'Broker' ? brokerManifestSchema : triggerManifestSchema;
      const parsed = schema.safeParse(value);
      if (!parsed.success) throw new ManifestError(file, number, issuesOf(parsed.error), what);
      if (kind === 'Broker') brokers.push({ manifest: parsed.data as BrokerManifest, file, document: number });
      else triggers.push({ manifest: parsed.data as TriggerManifest, file, document: number });
    }
  }
  return { brokers, triggers };
}

/** A destination's OIDC audience: its own `audience`, else that of its `ref` (Knative's resolver does the same). */
function optionalAudience(
  key: 'subscriber' | 'deadLetterSink',
  destination: Destination | undefined,
  namespace: string,
): Partial<Record<typeof key, string>> {
  if (destination?.audience) return { [key]: destination.audience };
  const ref = destination?.ref;
  return ref ? { [key]: audienceOf(ref.apiVersion, ref.kind, ref.namespace ?? namespace, ref.name) } : {};
}

/**
 * Reads `dir` and builds the routing table: each Trigger under its Broker, with its compiled filter, its
 * resolved subscriber and its delivery policy (the Trigger's, or else the Broker's).
 */
export async function loadTopology(options: {
  dir: string;
  namespace: string;
  services: ServiceMap;
}): Promise<Topology> {
  const { brokers, triggers } = await readManifests(options.dir);
  const topology: Topology = { brokers: new Map(), warnings: [] };
  const brokerSpecs = new Map<string, BrokerManifest>();

  for (const { manifest, file, document } of brokers) {
    const key = `${manifest.metadata.namespace ?? options.namespace}/${manifest.metadata.name}`;
    if (topology.brokers.has(key)) throw new ManifestError(file, document, [`Broker ${key} is defined twice`]);
    try {
      // Resolve the Broker's own delivery once, so a bad dead-letter ref is blamed on the Broker's file.
      deliveryPolicyOf(manifest.spec?.delivery, key.split('/')[0]!, options.services);
    } catch (error) {
      if (error instanceof UnsupportedDestinationError)
        throw new ManifestError(file, document, [error.message], `Broker ${key}`);
      throw error;
    }
    topology.brokers.set(key, { key, triggers: [] });
    brokerSpecs.set(key, manifest);
  }

  const seen = new Set<string>();
  for (const { manifest, file, document } of triggers) {
    const namespace = manifest.metadata.namespace ?? options.namespace;
    const key = `${namespace}/${manifest.metadata.name}`;
    const fail = (issue: string): never => {
      throw new ManifestError(file, document, [issue], `Trigger ${manifest.metadata.name}`);
    };
    if (seen.has(key)) fail(`Trigger ${key} is defined twice`);
    seen.add(key);
    // Knative defaults `spec.broker` to "default"; `brokerRef` (cross-namespace) names it explicitly.
    const { spec } = manifest;
    const brokerKey = spec.brokerRef
      ? `${spec.brokerRef.namespace ?? namespace}/${spec.brokerRef.name}`
      : `${namespace}/${spec.broker ?? 'default'}`;
    const broker = topology.brokers.get(brokerKey) ?? fail(`Broker ${brokerKey} is not defined in any manifest`);
    const ownDelivery = spec.delivery !== undefined;
    const brokerNamespace = brokerKey.split('/')[0]!;
    let route: TriggerRoute;
    const delivery = ownDelivery ? spec.delivery : brokerSpecs.get(brokerKey)?.spec?.delivery;
    try {
      route = {
        key,
        identity: subjectOf(
          namespace,
          oidcServiceAccount('eventing.knative.dev/v1', 'Trigger', manifest.metadata.name),
        ),
        audiences: {
          ...optionalAudience('subscriber', spec.subscriber, namespace),
          ...optionalAudience('deadLetterSink', delivery?.deadLetterSink, ownDelivery ? namespace : brokerNamespace),
        },
        matches: compileTriggerFilter(spec),
        subscriber: resolveDestination(spec.subscriber, namespace, options.services),
        policy: deliveryPolicyOf(
          ownDelivery ? spec.delivery : brokerSpecs.get(brokerKey)?.spec?.delivery,
          ownDelivery ? namespace : brokerNamespace,
          options.services,
        ),
      };
    } catch (error) {
      if (error instanceof UnsupportedDestinationError) return fail(error.message);
      throw error;
    }
    if ('unresolved' in route.subscriber) topology.warnings.push(`Trigger ${key}: ${route.subscriber.unresolved}`);
    const sink = route.policy.deadLetterSink;
    if (sink && 'unresolved' in sink) topology.warnings.push(`Trigger ${key} dead-letter sink: ${sink.unresolved}`);
    broker.triggers.push(route);
  }
  return topology;
}
