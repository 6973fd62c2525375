// What only Knative's admission webhooks (and its controllers) check, for manifests the CRD schemas accept.
// Sources: knative/serving pkg/apis/autoscaling (annotation validation), pkg/apis/serving (revision spec),
// knative/eventing pkg/apis/eventing/v1 (trigger, broker, delivery), pkg/apis/sources/v1 (ping, sinkbinding).
import { cronIssue, validTimeZone } from './cron.js';
import { parseGoDurationMs, parseIsoDurationMs } from './durations.js';
import type { K8sObject } from './manifests.js';

const A = 'autoscaling.knative.dev/';
export const AUTOSCALING_KEYS = new Set(
  [
    'class',
    'metric',
    'target',
    'target-utilization-percentage',
    'target-burst-capacity',
    'window',
    'panic-window-percentage',
    'panic-threshold-percentage',
    'min-scale',
    'max-scale',
    'initial-scale',
    'scale-down-delay',
    'activation-scale',
    'scale-to-zero-pod-retention-period',
  ].map((key) => A + key),
);
const CLASSES = new Set(['kpa.autoscaling.knative.dev', 'hpa.autoscaling.knative.dev']);
const KPA_METRICS = new Set(['concurrency', 'rps']);
const HPA_METRICS = new Set(['cpu', 'memory']);
const RESERVED_ENV = new Set(['PORT', 'K_SERVICE', 'K_CONFIGURATION', 'K_REVISION']);
const HOUR = 3_600_000;

const int = (text: string | undefined) => (text !== undefined && /^\d+$/.test(text) ? Number(text) : undefined);
const num = (text: string | undefined) =>
  text !== undefined && text.trim() !== '' && Number.isFinite(Number(text)) ? Number(text) : undefined;

/** Autoscaling annotations of a revision template (ValidateAnnotations in serving's autoscaling package). */
export function autoscalingIssues(annotations: Record<string, string> = {}): string[] {
  const issues: string[] = [];
  const get = (key: string) => annotations[A + key];
  for (const key of Object.keys(annotations)) {
    if (key.startsWith(A) && !AUTOSCALING_KEYS.has(key))
      issues.push(`unknown autoscaling annotation ${key} (the full kebab-case names only, e.g. ${A}min-scale)`);
  }
  const cls = get('class') ?? 'kpa.autoscaling.knative.dev';
  if (!CLASSES.has(cls))
    issues.push(`${A}class must be kpa.autoscaling.knative.dev or hpa.autoscaling.knative.dev, not "${cls}"`);
  const metric = get('metric');
  if (metric !== undefined && !(cls.startsWith('hpa') ? HPA_METRICS : KPA_METRICS).has(metric))
    issues.push(`${A}metric "${metric}" is not valid for ${cls}`);
  const target = get('target');
  if (target !== undefined && !((num(target) ?? 0) > 0))
    issues.push(`${A}target must be a number > 0, not "${target}"`);
  const utilization = get('target-utilization-percentage');
  if (utilization !== undefined && !((num(utilization) ?? 0) >= 1 && num(utilization)! <= 100))
    issues.push(`${A}target-utilization-percentage must be 1-100`);
  const burst = get('target-burst-capacity');
  if (burst !== undefined && !((num(burst) ?? -2) >= -1)) issues.push(`${A}target-burst-capacity must be ≥ -1`);
  const window = get('window');
  if (window !== undefined) {
    const ms = parseGoDurationMs(window);
    if (cls.startsWith('hpa')) issues.push(`${A}window applies to the KPA only`);
    else if (ms === undefined || ms < 6_000 || ms > HOUR)
      issues.push(`${A}window must be a duration between 6s and 1h, not "${window}"`);
  }
  const panicWindow = get('panic-window-percentage');
  if (panicWindow !== undefined && !((num(panicWindow) ?? 0) >= 1 && num(panicWindow)! <= 100))
    issues.push(`${A}panic-window-percentage must be 1-100`);
  const panicThreshold = get('panic-threshold-percentage');
  if (panicThreshold !== undefined && !((num(panicThreshold) ?? 0) >= 110 && num(panicThreshold)! <= 1000))
    issues.push(`${A}panic-threshold-percentage must be 110-1000`);
  const min = get('min-scale');
  const max = get('max-scale');
  if (min !== undefined && int(min) === undefined) issues.push(`${A}min-scale must be an integer ≥ 0, not "${min}"`);
  if (max !== undefined && int(max) === undefined) issues.push(`${A}max-scale must be an integer ≥ 0, not "${max}"`);
  if (int(min) !== undefined && int(max) !== undefined && int(max)! > 0 && int(min)! > int(max)!)
    issues.push(`${A}min-scale ${min} is above max-scale ${max}`);
  const initial = get('initial-scale');
  if (initial !== undefined && (int(initial) === undefined || int(initial) === 0))
    issues.push(`${A}initial-scale must be an integer ≥ 1 (0 needs allow-zero-initial-scale)`);
  const activation = get('activation-scale');
  if (activation !== undefined && !((int(activation) ?? 0) >= 2))
    issues.push(`${A}activation-scale must be an integer ≥ 2, not "${activation}"`);
  if (activation !== undefined && int(max) !== undefined && int(max)! > 0 && int(activation)! > int(max)!)
    issues.push(`${A}activation-scale is above max-scale`);
  const delay = get('scale-down-delay');
  if (delay !== undefined) {
    const ms = parseGoDurationMs(delay);
    if (ms === undefined || ms < 0 || ms > HOUR)
      issues.push(`${A}scale-down-delay must be a duration between 0s and 1h, not "${delay}"`);
  }
  const retention = get('scale-to-zero-pod-retention-period');
  if (retention !== undefined && parseGoDurationMs(retention) === undefined)
    issues.push(`${A}scale-to-zero-pod-retention-period must be a duration`);
  return issues;
}

/** A Knative Service (serving webhook: revision template, containers, reserved names, probes). */
export function serviceIssues(doc: K8sObject): string[] {
  const issues: string[] = [];
  for (const key of Object.keys(doc.metadata?.annotations ?? {})) {
    if (key.startsWith(A))
      issues.push(`${key} on the Service's metadata has no effect; put it on spec.template.metadata`);
  }
  const template = doc.spec?.template ?? {};
  const annotations = template.metadata?.annotations ?? {};
  issues.push(...autoscalingIssues(annotations));
  const spec = template.spec ?? {};
  const cc = spec.containerConcurrency;
  if (cc !== undefined && !(Number.isInteger(cc) && cc >= 0 && cc <= 1000))
    issues.push(`containerConcurrency must be 0-1000 (container-concurrency-max-limit), not ${cc}`);
  const target = num(annotations[`${A}target`]);
  if (cc > 0 && target !== undefined && target > cc)
    issues.push(`${A}target ${target} is above containerConcurrency ${cc}: the hard limit wins`);
  if (spec.timeoutSeconds !== undefined && !(spec.timeoutSeconds > 0 && spec.timeoutSeconds <= 600))
    issues.push(`timeoutSeconds must be 1-600 (max-revision-timeout-seconds), not ${spec.timeoutSeconds}`);
  const containers: any[] = spec.containers ?? []; // eslint-disable-line @typescript-eslint/no-explicit-any
  const withPorts = containers.filter((c) => (c.ports ?? []).length > 0);
  if (containers.length > 1 && withPorts.length !== 1)
    issues.push('with several containers exactly one must declare a port');
  for (const container of containers) {
    const ports = container.ports ?? [];
    if (ports.length > 1) issues.push(`container ${container.name}: at most one port`);
    const port = ports[0];
    if (port?.name !== undefined && !['http1', 'h2c'].includes(port.name))
      issues.push(`container ${container.name}: port name must be http1 or h2c`);
    for (const reserved of [8012, 8013, 8022, 9090, 9091])
      if (port?.containerPort === reserved) issues.push(`container port ${reserved} is reserved by queue-proxy`);
    for (const env of container.env ?? [])
      if (RESERVED_ENV.has(env.name)) issues.push(`env ${env.name} is reserved by Knative`);
    for (const probeName of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
      const probe = container[probeName];
      if (!probe) continue;
      const handlers = ['httpGet', 'tcpSocket', 'exec', 'grpc'].filter((h) => probe[h] !== undefined);
      if (handlers.length !== 1)
        issues.push(`${probeName}: exactly one handler, found ${handlers.join(', ') || 'none'}`);
      const probePort = probe.httpGet?.port ?? probe.tcpSocket?.port ?? probe.grpc?.port;
      if (
        probePort !== undefined &&
        probePort !== 0 &&
        port &&
        probePort !== port.containerPort &&
        probePort !== port.name
      ) {
        issues.push(`${probeName}: port ${probePort} must be the container port ${port.containerPort}`);
      }
    }
    if (container.securityContext?.privileged) issues.push('privileged containers are not allowed');
    const added: string[] = container.securityContext?.capabilities?.add ?? [];
    if (added.some((cap) => cap !== 'NET_BIND_SERVICE'))
      issues.push('only NET_BIND_SERVICE may be added to capabilities');
  }
  return issues;
}

function destinationIssues(destination: any, where: string): string[] {
  // eslint-disable-line @typescript-eslint/no-explicit-any
  if (!destination || (destination.ref === undefined && destination.uri === undefined))
    return [`${where}: a ref or a uri is required`];
  const issues: string[] = [];
  if (destination.ref) {
    for (const field of ['apiVersion', 'kind', 'name'])
      if (!destination.ref[field]) issues.push(`${where}.ref.${field} is required`);
    if (destination.uri !== undefined && /^[a-z]+:\/\//i.test(destination.uri))
      issues.push(`${where}: a uri next to a ref must be relative`);
  } else if (!/^https?:\/\/[^/]/.test(destination.uri)) {
    issues.push(`${where}.uri must be an absolute URL`);
  }
  return issues;
}

/** duckv1.DeliverySpec (eventing: ValidateDeliverySpec). */
export function deliveryIssues(delivery: any, where = 'delivery'): string[] {
  // eslint-disable-line @typescript-eslint/no-explicit-any
  if (delivery === undefined) return [];
  const issues: string[] = [];
  if (delivery.retry !== undefined && !(Number.isInteger(delivery.retry) && delivery.retry >= 0))
    issues.push(`${where}.retry must be an integer ≥ 0`);
  if (delivery.backoffPolicy !== undefined && !['linear', 'exponential'].includes(delivery.backoffPolicy))
    issues.push(`${where}.backoffPolicy must be linear or exponential`);
  for (const field of ['backoffDelay', 'timeout', 'retryAfterMax']) {
    if (delivery[field] !== undefined && parseIsoDurationMs(String(delivery[field])) === undefined)
      issues.push(`${where}.${field} must be an ISO 8601 duration such as PT0.2S`);
  }
  if (delivery.format !== undefined && !['json', 'binary'].includes(delivery.format))
    issues.push(`${where}.format must be json or binary`);
  if (delivery.deadLetterSink !== undefined)
    issues.push(...destinationIssues(delivery.deadLetterSink, `${where}.deadLetterSink`));
  return issues;
}

const ATTRIBUTE = /^[a-z][a-z0-9]*$/;
const DIALECTS = ['exact', 'prefix', 'suffix', 'all', 'any', 'not', 'cesql'];

function filterIssues(filter: any, where: string): string[] {
  // eslint-disable-line @typescript-eslint/no-explicit-any
  if (filter === null || typeof filter !== 'object' || Array.isArray(filter)) return [`${where} must be an object`];
  const present = Object.keys(filter);
  const issues: string[] = [];
  const unknown = present.filter((key) => !DIALECTS.includes(key));
  if (unknown.length > 0)
    issues.push(`${where}: unknown dialect ${unknown.join(', ')} (the API server would prune it and match everything)`);
  if (present.length !== 1)
    issues.push(`${where}: exactly one dialect per filter, found ${present.join(', ') || 'none'}`);
  for (const dialect of ['exact', 'prefix', 'suffix']) {
    const map = filter[dialect];
    if (map === undefined) continue;
    const entries = Object.entries(map ?? {});
    if (entries.length !== 1) issues.push(`${where}.${dialect}: exactly one attribute`);
    for (const [name, value] of entries) {
      if (!ATTRIBUTE.test(name)) issues.push(`${where}.${dialect}: "${name}" is not a CloudEvents attribute name`);
      if (typeof value !== 'string' || value === '')
        issues.push(`${where}.${dialect}.${name} must be a non-empty string`);
    }
  }
  for (const dialect of ['all', 'any']) {
    if (filter[dialect] === undefined) continue;
    if (!Array.isArray(filter[dialect]) || filter[dialect].length === 0)
      issues.push(`${where}.${dialect} must be a non-empty list`);
    else
      for (const [i, inner] of (filter[dialect] as unknown[]).entries())
        issues.push(...filterIssues(inner, `${where}.${dialect}[${i}]`));
  }
  if (filter.not !== undefined) issues.push(...filterIssues(filter.not, `${where}.not`));
  return issues;
}

/** A Trigger (eventing webhook: broker, filters, subscriber, delivery). */
export function triggerIssues(doc: K8sObject): string[] {
  const spec = doc.spec ?? {};
  const issues: string[] = [];
  if (spec.broker === undefined && spec.brokerRef === undefined) issues.push('spec.broker is required');
  if (spec.filter?.attributes) {
    for (const [name, value] of Object.entries(spec.filter.attributes)) {
      if (!ATTRIBUTE.test(name)) issues.push(`filter.attributes: "${name}" is not a CloudEvents attribute name`);
      if (typeof value !== 'string') issues.push(`filter.attributes.${name} must be a string`);
    }
  }
  if (spec.filters !== undefined) {
    if (!Array.isArray(spec.filters)) issues.push('spec.filters must be a list');
    else
      for (const [i, filter] of (spec.filters as unknown[]).entries())
        issues.push(...filterIssues(filter, `filters[${i}]`));
  }
  issues.push(...destinationIssues(spec.subscriber, 'subscriber'));
  issues.push(...deliveryIssues(spec.delivery));
  return issues;
}

export function brokerIssues(doc: K8sObject): string[] {
  const issues: string[] = [];
  const cls = doc.metadata?.annotations?.['eventing.knative.dev/broker.class'];
  if (!cls) issues.push('eventing.knative.dev/broker.class should be set (the cluster default applies otherwise)');
  if (cls === 'Kafka' && !doc.spec?.config) issues.push('a Kafka Broker needs spec.config (its ConfigMap)');
  if (doc.spec?.config)
    for (const field of ['apiVersion', 'kind', 'name'])
      if (!doc.spec.config[field]) issues.push(`spec.config.${field} is required`);
  issues.push(...deliveryIssues(doc.spec?.delivery, 'spec.delivery'));
  return issues;
}

/** A PingSource (sources webhook: cron, time zone, data, sink). */
export function pingSourceIssues(doc: K8sObject): string[] {
  const spec = doc.spec ?? {};
  const issues: string[] = [];
  if (typeof spec.schedule !== 'string') issues.push('spec.schedule is required');
  else {
    const issue = cronIssue(spec.schedule, (text) => parseGoDurationMs(text) !== undefined);
    if (issue) issues.push(`spec.schedule: ${issue}`);
  }
  if (spec.timezone !== undefined && !validTimeZone(spec.timezone))
    issues.push(`spec.timezone ${spec.timezone} is not an IANA time zone`);
  if (spec.data !== undefined && spec.dataBase64 !== undefined)
    issues.push('spec.data and spec.dataBase64 are mutually exclusive');
  if (spec.data !== undefined && /json/i.test(spec.contentType ?? '')) {
    try {
      JSON.parse(spec.data);
    } catch {
      issues.push('spec.data is not valid JSON for a JSON contentType');
    }
  }
  if (spec.dataBase64 !== undefined && !/^[A-Za-z0-9+/]*={0,2}$/.test(spec.dataBase64))
    issues.push('spec.dataBase64 is not base64');
  issues.push(...destinationIssues(spec.sink, 'spec.sink'));
  return issues;
}

export function sinkBindingIssues(doc: K8sObject): string[] {
  const spec = doc.spec ?? {};
  const issues: string[] = [];
  const subject = spec.subject ?? {};
  for (const field of ['apiVersion', 'kind']) if (!subject[field]) issues.push(`spec.subject.${field} is required`);
  if ((subject.name === undefined) === (subject.selector === undefined))
    issues.push('spec.subject needs exactly one of name and selector');
  issues.push(...destinationIssues(spec.sink, 'spec.sink'));
  return issues;
}

/** The webhook issues of any object we know; an empty list for the rest. */
export function webhookIssues(doc: K8sObject): string[] {
  const group = doc.apiVersion?.split('/')[0];
  if (group === 'serving.knative.dev' && doc.kind === 'Service') return serviceIssues(doc);
  if (group === 'eventing.knative.dev' && doc.kind === 'Trigger') return triggerIssues(doc);
  if (group === 'eventing.knative.dev' && doc.kind === 'Broker') return brokerIssues(doc);
  if (group === 'sources.knative.dev' && doc.kind === 'PingSource') return pingSourceIssues(doc);
  if (group === 'sources.knative.dev' && doc.kind === 'SinkBinding') return sinkBindingIssues(doc);
  return [];
}

/** The `type` of a Trigger's `exact` filter (top level, or inside `all`). */
export function triggerType(doc: K8sObject): string | undefined {
  const filters: { exact?: { type?: string }; all?: { exact?: { type?: string } }[] }[] = doc.spec?.filters ?? [];
  for (const filter of filters) {
    if (filter.exact?.type) return filter.exact.type;
    for (const inner of filter.all ?? []) if (inner.exact?.type) return inner.exact.type;
  }
  return undefined;
}
