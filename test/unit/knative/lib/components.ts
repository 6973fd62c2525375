import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ARCHITECTURE_FILE, type K8sObject, type Located, ROOT } from './manifests.js';

/** A deployable: the bridge or a function, with its source folder and its bundle name. */
export interface Component {
  name: string;
  dir: string;
}

/** The deployables in the repo now: bridge/, tick-gate/, console/server/ and every functions/<name>/ with an index.ts. */
export function components(): Component[] {
  const out: Component[] = [];
  for (const name of ['bridge', 'tick-gate'])
    if (existsSync(join(ROOT, name, 'index.ts'))) out.push({ name, dir: join(ROOT, name) });
  if (existsSync(join(ROOT, 'console', 'server', 'index.ts')))
    out.push({ name: 'console', dir: join(ROOT, 'console', 'server') });
  const functions = join(ROOT, 'functions');
  for (const name of existsSync(functions) ? readdirSync(functions).sort() : []) {
    if (existsSync(join(functions, name, 'index.ts'))) out.push({ name, dir: join(functions, name) });
  }
  return out;
}

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...sources(path));
    else if (entry.endsWith('.ts')) out.push(path);
  }
  return out;
}

export const PING = 'dev.knative.sources.ping';
const TYPE_LITERAL = /['"`]((?:io\.kiot|dev\.knative\.sources)\.[a-z][a-z0-9.]*[a-z0-9])['"`]/g;

/** Event types a component's code names (string literals): what it emits or consumes. */
export function typesInCode(component: Component): Set<string> {
  const types = new Set<string>();
  for (const file of sources(component.dir))
    for (const match of readFileSync(file, 'utf8').matchAll(TYPE_LITERAL)) types.add(match[1]!);
  return types;
}

export interface ContractRow {
  types: string[];
  producers: string[];
  consumers: string[];
  /** The producer cell says "any function": each function may emit it, none has to. */
  anyProducer: boolean;
}

const KNOWN = [
  'bridge',
  'tick-gate',
  'device-registry',
  'telemetry-ingest',
  'command-dispatch',
  'report-generation',
  'dead-letters',
  'jobs',
];

/** docs/architecture.md's CloudEvents table: which component produces and which consumes each type. */
export function contract(file = ARCHITECTURE_FILE): ContractRow[] {
  const rows: ContractRow[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const cells = line.split('|').map((cell) => cell.trim());
    if (cells.length < 5 || !cells[1]!.startsWith('`')) continue;
    const types: string[] = [];
    for (const [, literal] of cells[1]!.matchAll(/`([^`]+)`/g)) {
      if (literal!.startsWith('…') && types.length > 0)
        types.push(types[types.length - 1]!.replace(/\.[^.]+$/, `.${literal!.slice(1)}`));
      else if (/^[a-z]+\.[a-z_.]+$/.test(literal!)) types.push(literal!);
    }
    const names = (cell: string) =>
      cell === 'any function'
        ? KNOWN.filter((n) => n !== 'bridge' && n !== 'tick-gate')
        : cell === 'PingSource'
          ? ['PingSource']
          : KNOWN.filter((n) => cell.includes(n));
    if (types.length === 0) continue;
    rows.push({
      types,
      producers: names(cells[2]!),
      consumers: names(cells[3]!),
      anyProducer: cells[2] === 'any function',
    });
  }
  return rows;
}

/**
 * The component a destination reaches: the bundle a Knative Service runs (a function's app Service and its
 * `<name>-events` Service both run `node dist/<name>.js`), or the workload behind a plain Service.
 */
export function componentOf(
  destination: { ref?: { apiVersion: string; kind: string; name: string } } | undefined,
  manifests: Located[],
): string | undefined {
  const ref = destination?.ref;
  if (ref?.kind !== 'Service') return undefined;
  if (ref.apiVersion.startsWith('serving.knative.dev/')) {
    const knative = manifests.find(
      ({ doc }) => doc.apiVersion === ref.apiVersion && doc.kind === 'Service' && doc.metadata.name === ref.name,
    )?.doc;
    const command: string[] = knative?.spec?.template?.spec?.containers?.[0]?.command ?? [];
    return /^dist\/([a-z-]+)\.js$/.exec(command.at(-1) ?? '')?.[1];
  }
  const service = manifests.find(
    ({ doc }) => doc.apiVersion === 'v1' && doc.kind === 'Service' && doc.metadata.name === ref.name,
  )?.doc;
  const selector: Record<string, string> = service?.spec?.selector ?? {};
  const workload = manifests.find(({ doc }) => {
    const labels: Record<string, string> = doc.spec?.template?.metadata?.labels ?? {};
    return (
      ['StatefulSet', 'Deployment'].includes(doc.kind) && Object.entries(selector).every(([k, v]) => labels[k] === v)
    );
  })?.doc;
  const command: string[] = workload?.spec?.template?.spec?.containers?.[0]?.command ?? [];
  return /^dist\/([a-z-]+)\.js$/.exec(command.at(-1) ?? '')?.[1];
}

export const isBrokerRef = (destination: { ref?: { kind?: string } } | undefined) =>
  destination?.ref?.kind === 'Broker';

/**
 * Whether a PingSource's ticks reach the Broker: straight, or through the tick gate (tick-gate/), which passes a
 * tick on unchanged when its task has pending work.
 */
export const tickReachesBroker = (ping: K8sObject, manifests: Located[]) =>
  isBrokerRef(ping.spec.sink) || componentOf(ping.spec.sink, manifests) === 'tick-gate';
export type { K8sObject };
