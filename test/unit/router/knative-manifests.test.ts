import { access, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { serviceMapSchema } from '../../../scripts/router/destinations.js';
import { loadTopology } from '../../../scripts/router/load-manifests.js';
import { crdValidators } from '../knative/lib/manifests.js';

// The manifests in knative/ against the Knative CRD schemas (from the Knative Go modules), as the API server's
// structural-schema check would do, and against the router (what the Knative webhook would reject).
const repo = fileURLToPath(new URL('../../../', import.meta.url));
const knativeDir = join(repo, 'knative');

async function yamlFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await yamlFiles(path)));
    else if (/\.ya?ml$/.test(entry.name)) out.push(path);
  }
  return out;
}

async function documents(file: string): Promise<Record<string, unknown>[]> {
  return parseAllDocuments(await readFile(file, 'utf8'))
    .map((document) => document.toJS() as unknown)
    .filter((value): value is Record<string, unknown> => typeof value === 'object' && value !== null);
}

describe('knative/ manifests', () => {
  it('are valid against the CRD schema of their kind (each served version)', async () => {
    const validators = crdValidators();
    const checked: string[] = [];
    for (const file of await yamlFiles(knativeDir)) {
      for (const manifest of await documents(file)) {
        const validate = validators.get(`${String(manifest.apiVersion)} ${String(manifest.kind)}`);
        if (!validate) continue;
        const name = `${file.slice(repo.length)} ${String(manifest.kind)} ${String((manifest.metadata as { name?: string })?.name)}`;
        expect(validate(manifest), `${name}: ${JSON.stringify(validate.errors)}`).toBe(true);
        checked.push(name);
      }
    }
    expect(checked).toEqual(
      expect.arrayContaining([
        expect.stringContaining('Broker default'),
        expect.stringContaining('Trigger mqtt-publish-to-bridge'),
      ]),
    );
  });

  it('apply every Broker and Trigger the router reads: each is reachable from knative/kustomization.yaml', async () => {
    // The router reads every YAML file; `kubectl apply -k knative/` only what the kustomizations list.
    // A Trigger in one and not the other would make local routing differ from production routing.
    const listed = async (dir: string): Promise<string[]> => {
      const [kustomization] = await documents(join(dir, 'kustomization.yaml'));
      const out: string[] = [];
      for (const resource of (kustomization!.resources as string[] | undefined) ?? []) {
        const path = join(dir, resource);
        await access(path); // kustomize fails on a resource that does not exist
        out.push(...(/\.ya?ml$/.test(resource) ? [path] : await listed(path)));
      }
      return out;
    };
    const applied = new Set(await listed(knativeDir));
    const routed: string[] = [];
    for (const file of await yamlFiles(knativeDir)) {
      for (const manifest of await documents(file)) {
        const eventing = String(manifest.apiVersion).startsWith('eventing.knative.dev/');
        if (eventing && (manifest.kind === 'Broker' || manifest.kind === 'Trigger')) routed.push(file);
      }
    }
    expect(routed.filter((file) => !applied.has(file))).toEqual([]);
  });

  it('load in the router with the bridge and the dead-letter service mapped, nothing unresolved', async () => {
    const services = serviceMapSchema.parse('mqtt-bridge=http://127.0.0.1:1,dead-letters=http://127.0.0.1:2');
    const topology = await loadTopology({ dir: knativeDir, namespace: 'kiot', services });
    const bridge = topology.brokers.get('kiot/default')!.triggers.find((t) => t.key === 'kiot/mqtt-publish-to-bridge')!;
    expect(bridge.subscriber).toEqual({ url: 'http://127.0.0.1:1' });
    expect(bridge.policy).toMatchObject({
      retry: 6,
      backoff: { policy: 'exponential', delayMs: 200 },
      deadLetterSink: { url: 'http://127.0.0.1:2' },
    });
  });
});
