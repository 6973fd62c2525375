import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';
import { parseAllDocuments } from 'yaml';
import { knativeCrdFiles } from './knative-modules.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
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

/** ajv validators of the CRD schemas: key `group/version Kind` (as `apiVersion Kind`). */
export function crdValidators(files = knativeCrdFiles()): Map<string, ValidateFunction> {
  const ajv = new Ajv({ strict: false, validateFormats: false, allErrors: true });
  const validators = new Map<string, ValidateFunction>();
  for (const file of files) {
    for (const crd of parseDocuments(readFileSync(file, 'utf8'), file) as K8sObject[]) {
      if (crd?.kind !== 'CustomResourceDefinition') continue;
      for (const version of crd.spec.versions as { name: string; schema?: { openAPIV3Schema?: object } }[]) {
        if (!version.schema?.openAPIV3Schema) continue;
        validators.set(
          `${crd.spec.group}/${version.name} ${crd.spec.names.kind}`,
          ajv.compile(version.schema.openAPIV3Schema),
        );
      }
    }
  }
  return validators;
}

export const crdKey = (doc: K8sObject) => `${doc.apiVersion} ${doc.kind}`;

export function exists(path: string): boolean {
  return existsSync(path);
}
