import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { z } from 'zod';
import { audienceOf, childName, oidcServiceAccount, sendersTo, subjectOf } from '../deploy-lib/knative-oidc.mjs';

/**
 * Knative Eventing's authorization (EventPolicy, eventing.knative.dev/v1alpha1) as the router applies it, and
 * the names Knative derives for it: the OIDC audience of a resource and the service account a Trigger or a
 * source sends with (scripts/deploy-lib/knative-oidc.mjs, shared with the manifest renderer). Mirrors
 * knative.dev/eventing pkg/auth (event_policy.go).
 */

export { audienceOf, childName, oidcServiceAccount, subjectOf };

const refSchema = z.looseObject({
  apiVersion: z.string().min(1),
  kind: z.string().min(1),
  name: z.string().min(1),
  namespace: z.string().min(1).optional(),
});
const policySchema = z.looseObject({
  apiVersion: z.literal('eventing.knative.dev/v1alpha1'),
  kind: z.literal('EventPolicy'),
  metadata: z.looseObject({ name: z.string().min(1), namespace: z.string().min(1).optional() }),
  spec: z.looseObject({
    to: z.array(z.looseObject({ ref: refSchema.omit({ namespace: true }).optional() })).optional(),
    from: z.array(z.looseObject({ ref: refSchema.optional(), sub: z.string().min(1).optional() })).default([]),
  }),
});
type Policy = z.infer<typeof policySchema>;

export interface EventPolicies {
  /**
   * The subjects allowed to send to a resource: those of every policy that applies to it; without any, Knative's
   * default mode `allow-same-namespace` (`default-authorization-mode`), i.e. the namespace's service accounts.
   */
  sendersTo(target: { apiVersion: string; kind: string; name: string; namespace: string }): string[];
}

async function yamlFiles(dir: string): Promise<string[]> {
  const files: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...(await yamlFiles(path)));
    else if (/\.ya?ml$/i.test(entry.name)) files.push(path);
  }
  return files;
}

/** Every EventPolicy under `dir` (the base and the overlays: the `oidc` overlay holds kiot's). */
export async function loadEventPolicies(dir: string, namespace: string): Promise<EventPolicies> {
  const policies: Policy[] = [];
  for (const file of await yamlFiles(dir)) {
    for (const document of parseAllDocuments(await readFile(file, 'utf8'))) {
      const value = document.toJS() as { kind?: unknown } | null;
      if (value?.kind !== 'EventPolicy') continue;
      const parsed = policySchema.safeParse(value);
      if (!parsed.success) throw new Error(`${file}: EventPolicy: ${parsed.error.issues[0]?.message}`);
      policies.push(parsed.data);
    }
  }
  return { sendersTo: (target) => sendersTo(policies, target, namespace) };
}
