import { access, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments, stringify } from 'yaml';
import { serviceMapSchema } from '../../../scripts/router/destinations.js';
import { loadTopology } from '../../../scripts/router/load-manifests.js';
import { admit } from '../knative/lib/admission.js';

// The Brokers and Triggers in knative/ as Knative admits them (tools/knative runs its own admission code)
// and as the router loads them.
const knativeDir = fileURLToPath(new URL('../../../knative', import.meta.url));

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
  it('every Broker and Trigger the router reads is admitted by Knative (its own admission code)', async () => {
    const routed: Record<string, unknown>[] = [];
    for (const file of await yamlFiles(knativeDir)) {
      for (const manifest of await documents(file)) {
        const eventing = String(manifest.apiVersion).startsWith('eventing.knative.dev/');
        if (eventing && (manifest.kind === 'Broker' || manifest.kind === 'Trigger')) routed.push(manifest);
      }
    }
    const results = admit(routed.map((manifest) => stringify(manifest)).join('---\n'));
    expect(results.filter((r) => !r.allowed).map((r) => r.message)).toEqual([]);
    expect(results.filter((r) => r.checked === 'knative').length).toBe(routed.length);
    expect(results.map((r) => `${r.kind} ${r.name}`)).toEqual(
      expect.arrayContaining(['Broker default', 'Trigger mqtt-publish-to-bridge']),
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
