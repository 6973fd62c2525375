import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

export const ROOT = repositoryRoot(dirname(fileURLToPath(import.meta.url)));
export const KNATIVE_DIR = join(ROOT, 'knative');
/** The architecture contract (event types with their producers and consumers) the routing tests read. */
export const ARCHITECTURE_FILE = join(ROOT, 'docs', 'architecture.md');

// A Kubernetes object as parsed from YAML; only the common envelope is typed.
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  // Manifests are data: each check reads the fields it needs.
  spec?: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  [key: string]: unknown;
}

export interface Located {
  file: string;
  index: number;
  doc: K8sObject;
}

export function yamlFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...yamlFiles(path));
    else if (/\.ya?ml$/.test(entry.name)) out.push(path);
  }
  return out;
}

/** Parses a multi-document YAML text; YAML errors throw with the file name. */
export function parseDocuments(text: string, file = '(text)'): unknown[] {
  return parseAllDocuments(text).map((document, index) => {
    if (document.errors.length > 0)
      throw new Error(`${file} document ${index + 1}: ${document.errors.map((e) => e.message).join('; ')}`);
    return document.toJS() as unknown;
  });
}

export const isKustomization = (doc: unknown) =>
  (doc as { kind?: string } | null)?.kind === 'Kustomization' ||
  ((doc as { resources?: unknown } | null)?.resources !== undefined && (doc as { kind?: string }).kind === undefined);

/**
 * Every Kubernetes object in knative/ as `kubectl apply -k` would see it in the base: all YAML files except
 * kustomizations and the overlays (which hold only patches and overlay-only objects, checked through kustomize).
 */
export function loadManifests(options: { includeOverlays?: boolean } = {}): Located[] {
  const out: Located[] = [];
  for (const path of yamlFiles(KNATIVE_DIR)) {
    const file = relative(ROOT, path);
    if (!options.includeOverlays && file.startsWith('knative/overlays/')) continue;
    parseDocuments(readFileSync(path, 'utf8'), file).forEach((doc, index) => {
      if (doc === null || typeof doc !== 'object' || isKustomization(doc)) return;
      out.push({ file, index: index + 1, doc: doc as K8sObject });
    });
  }
  return out;
}

export const named = (doc: K8sObject) => `${doc.kind} ${doc.metadata?.namespace ?? '?'}/${doc.metadata?.name ?? '?'}`;

/** The `type` of a Trigger's `exact` filter (top level, or inside `all`). */
export function triggerType(doc: K8sObject): string | undefined {
  const filters: { exact?: { type?: string }; all?: { exact?: { type?: string } }[] }[] = doc.spec?.filters ?? [];
  for (const filter of filters) {
    if (filter.exact?.type) return filter.exact.type;
    for (const inner of filter.all ?? []) if (inner.exact?.type) return inner.exact.type;
  }
  return undefined;
}

export function exists(path: string): boolean {
  return existsSync(path);
}

/** The nearest folder up from `from` with package.json and knative/ (this module also runs bundled into dist/). */
function repositoryRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'knative'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no repository (package.json and knative/) above ${from}`);
  }
}
