// Knative Eventing's sender identity (authentication-oidc) and authorization (EventPolicy): the names Knative
// derives (a resource's audience, the service account a Trigger or source sends with) and who a set of
// EventPolicies lets send to a resource. Shared by the manifest renderer (each receiver's EVENT_AUDIENCE and
// EVENT_SENDERS) and the local router (scripts/router/event-policies.ts). Mirrors knative.dev/eventing pkg/auth
// (audience.go, serviceaccount.go, event_policy.go) and knative.dev/pkg kmeta.ChildName.
import { createHash } from 'node:crypto';

/** `<group>/<kind>/<namespace>/<name>`, lower case (pkg/auth GetAudience). */
export function audienceOf(apiVersion, kind, namespace, name) {
  const group = apiVersion.includes('/') ? apiVersion.split('/')[0] : '';
  return `${group}/${kind}/${namespace}/${name}`.toLowerCase();
}

const LONGEST = 63;
const HEAD = LONGEST - 32;

/** kmeta.ChildName: `parent + suffix` when it fits 63 characters, else a hashed form that does. */
export function childName(parent, suffix) {
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
export function oidcServiceAccount(apiVersion, kind, name) {
  const group = apiVersion.includes('/') ? apiVersion.split('/')[0] : '';
  return childName(name, `-oidc-${group}-${kind}`).toLowerCase();
}

/** The `sub` of a service account's token. */
export const subjectOf = (namespace, serviceAccount) => `system:serviceaccount:${namespace}:${serviceAccount}`;

/**
 * The subjects `policies` (parsed EventPolicy objects) let send to `target`: those of every policy in its namespace
 * whose `to` names it (or that has no `to`); without any, Knative's default mode `allow-same-namespace`
 * (`default-authorization-mode`), i.e. any service account of the namespace (`system:serviceaccount:<ns>:*`).
 */
export function sendersTo(policies, target, defaultNamespace) {
  const group = (apiVersion) => (apiVersion.includes('/') ? apiVersion.split('/')[0] : '');
  const applying = policies.filter((policy) => {
    if ((policy.metadata.namespace ?? defaultNamespace) !== target.namespace) return false;
    const to = policy.spec.to ?? [];
    return (
      to.length === 0 ||
      to.some(
        (item) =>
          item.ref?.name === target.name &&
          item.ref.kind === target.kind &&
          group(item.ref.apiVersion) === group(target.apiVersion),
      )
    );
  });
  if (applying.length === 0) return [`${subjectOf(target.namespace, '')}*`];
  return applying.flatMap((policy) =>
    (policy.spec.from ?? []).flatMap((from) => {
      if (from.sub) return [from.sub];
      if (!from.ref) return [];
      const namespace = from.ref.namespace ?? policy.metadata.namespace ?? defaultNamespace;
      return [subjectOf(namespace, oidcServiceAccount(from.ref.apiVersion, from.ref.kind, from.ref.name))];
    }),
  );
}
