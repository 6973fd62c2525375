import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The Go module of the admission tool: its go.mod pins the Knative releases the manifests target. */
export const TOOLS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'tools', 'knative');
const MODULES = { serving: 'knative.dev/serving', eventing: 'knative.dev/eventing' } as const;

function go(args: string[]): string {
  const result = spawnSync('go', args, { cwd: TOOLS_DIR, encoding: 'utf8' });
  if (result.error) throw new Error(`go ${args.join(' ')}: ${result.error.message} (the Knative checks need Go)`);
  if (result.status !== 0) throw new Error(`go ${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
}

let dirs: Record<keyof typeof MODULES, string> | undefined;

/**
 * Where the Go module cache holds knative.dev/serving and knative.dev/eventing at the versions of
 * tools/knative/go.mod (downloaded from the module proxy on first use): their CRDs and default ConfigMaps
 * are read from there, never copied into the repository.
 */
export function knativeModuleDirs(): Record<keyof typeof MODULES, string> {
  if (dirs) return dirs;
  go(['mod', 'download', ...Object.values(MODULES)]);
  const lines = go(['list', '-m', '-f', '{{.Path}} {{.Dir}}', ...Object.values(MODULES)])
    .trim()
    .split('\n');
  const byPath = new Map(lines.map((line) => line.split(' ') as [string, string]));
  dirs = {
    serving: byPath.get(MODULES.serving) ?? '',
    eventing: byPath.get(MODULES.eventing) ?? '',
  };
  if (!dirs.serving || !dirs.eventing) throw new Error(`go list -m gave no directory: ${lines.join('; ')}`);
  return dirs;
}

/** The CustomResourceDefinition files of Knative Serving and Eventing as released (config/core/…). */
export function knativeCrdFiles(): string[] {
  const { serving, eventing } = knativeModuleDirs();
  return [join(serving, 'config', 'core', '300-resources'), join(eventing, 'config', 'core', 'resources')].flatMap(
    (dir) =>
      readdirSync(dir)
        .filter((name) => name.endsWith('.yaml'))
        .sort()
        .map((name) => join(dir, name)),
  );
}
