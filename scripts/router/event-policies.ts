import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { z } from 'zod';

/**
 * Knative Eventing's authorization (EventPolicy, eventing.knative.dev/v1alpha1) as the router applies it, and
 * the names Knative derives for it: the OIDC audience of a resource and the service account a Trigger or a
 * source sends with. Mirrors knative.dev/eventing pkg/auth (audience.go, serviceaccount.go, event_policy.go)
 * and knative.dev/pkg kmeta.ChildName.
 */

/** `<group>/<kind>/<namespace>/<name>`, lower case (pkg/auth GetAudience). */
export function audienceOf(apiVersion: string, kind: string, namespace: string, name: string): string {
  const group = apiVersion.includes('/') ? apiVersion.split('/')[0]! : '';
  return `${group}/${kind}/${namespace}/${name}`.toLowerCase();
}

const LONGEST = 63;
const HEAD = LONGEST - 32;

/** kmeta.ChildName: `parent + suffix` when it fits 63 characters, else a hashed form that does. */
export function childName(parent: string, suffix: string): string {
  if (parent.length <= LONGEST - suffix.length) return parent + suffix;
  if (HEAD - suffix.length <= 0) {
    const hash = createHash('md5')
      .update(parent + suffix)
      .digest('hex');
    let name = parent.slice(0, HEAD) + hash;
    const missing = LONGEST - name.length;
    if (missing > 0) name += suffix.slice(0, missing);
    return name.replace(/[^a-zA-Z0-9]+$/, '');
  }
  const hash = createHash('md5').update(parent).digest('hex');
  return `${parent.slice(0, HEAD - suffix.length)}${hash}${suffix}`;
}

/** The service account Knative creates for a resource's OIDC identity (GetOIDCServiceAccountNameForResource). */
export function oidcServiceAccount(apiVersion: string, kind: string, name: string): string {
  const group = apiVersion.includes('/') ? apiVersion.split('/')[0]! : '';
  return childName(name, `-oidc-${group}-${kind}`).toLowerCase();
}

export const subjectOf = (namespace: string, serviceAccount: string) =>
  `system:serviceaccount:${namespace}:${serviceAccount}`;

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
  const subjectsOf = (policy: Policy, policyNamespace: string) =>
    policy.spec.from.flatMap((from) => {
      if (from.sub) return [from.sub];
      if (!from.ref) return [];
      const refNamespace = from.ref.namespace ?? policyNamespace;
      return [subjectOf(refNamespace, oidcServiceAccount(from.ref.apiVersion, from.ref.kind, from.ref.name))];
    });
  return {
    sendersTo(target) {
      const applying = policies.filter((policy) => {
        const policyNamespace = policy.metadata.namespace ?? namespace;
        if (policyNamespace !== target.namespace) return false;
        const to = policy.spec.to ?? [];
        return (
          to.length === 0 ||
          to.some(
            (item) =>
              item.ref?.name === target.name &&
              item.ref.kind === target.kind &&
              item.ref.apiVersion.split('/')[0] === target.apiVersion.split('/')[0],
          )
        );
      });
      if (applying.length === 0) return [`${subjectOf(target.namespace, '')}*`];
      return applying.flatMap((policy) => subjectsOf(policy, policy.metadata.namespace ?? namespace));
    },
  };
}
