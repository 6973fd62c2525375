// Each workload's part in sender identity (Knative Eventing `authentication-oidc`, docs/deploy.md "Events only
// from the eventing plane"): its own service account `kiot-<workload>`, the projected service account tokens it
// needs and the EVENT_* settings that point at them. Derived, not listed, so a new Trigger or producer cannot be
// forgotten:
//   receiver  an EventPolicy of knative/overlays/oidc names it: it checks every event's token (audience, issuer,
//             JWKS of the API server, read with its own API-server token and the cluster CA) and the sender
//             against exactly the subjects those policies allow (EVENT_SENDERS)
//   producer  it posts to the Broker (K_SINK from the ConfigMap or a SinkBinding): a token for the Broker's audience
//   dead-letter poster  it posts to dead-letters itself (DEAD_LETTER_SINK): a token for that audience; never the
//             app half of a split function (FUNCTION_ROLE=app): only its events half receives what it dead-letters
// Whether receivers check at all is the ConfigMap's EVENT_AUTH: `off` in the base, `oidc` in the oidc overlay.
// The tokens are harmless without it: each is good only for its one audience, for an hour, rotated by the kubelet.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { audienceOf, sendersTo } from './knative-oidc.mjs';
import { knativeServicesOf, ROOT } from './values.mjs';

export const EVENT_POLICIES_FILE = 'knative/overlays/oidc/event-policies.yaml';
export const IDENTITY_DIR = '/var/run/kiot/identity';
const IDENTITY_VOLUME = 'identity';
/** The kubelet renews a projected token at 80 % of its life; the producers re-read the file as it changes. */
const TOKEN_SECONDS = 3600;

export const serviceAccountOf = (workload) => `kiot-${workload}`;

export function loadEventPolicies(root = ROOT) {
  return parseAllDocuments(readFileSync(join(root, EVENT_POLICIES_FILE), 'utf8'))
    .map((document) => document.toJS())
    .filter((doc) => doc?.kind === 'EventPolicy');
}

/**
 * The identity settings of one workload: `target` is the resource its senders address (its Knative Service, or
 * the Kubernetes Service in front of the bridge or the tick gate); `producer` whether it posts to the Broker.
 */
export function eventPlaneOf(values, policies, { workload, spec, target, producer, role }) {
  const namespace = values.namespace;
  const senders = sendersTo(policies, { ...target, namespace }, namespace);
  const receiver = !senders.some((sender) => sender.endsWith('*'));
  const deadLetterPoster = spec.env?.DEAD_LETTER_SINK !== undefined && role !== 'app';
  const env = {};
  const fromConfigMap = [];
  const sources = [];
  const token = (path, audience) =>
    sources.push({
      serviceAccountToken: { path, ...(audience ? { audience } : {}), expirationSeconds: TOKEN_SECONDS },
    });
  if (receiver) {
    fromConfigMap.push('EVENT_AUTH', 'EVENT_OIDC_ISSUER', 'EVENT_OIDC_JWKS_URL');
    Object.assign(env, {
      EVENT_AUDIENCE: audienceOf(target.apiVersion, target.kind, namespace, target.name),
      EVENT_SENDERS: senders.join(','),
      EVENT_OIDC_JWKS_TOKEN_FILE: `${IDENTITY_DIR}/api-server-token`,
      EVENT_OIDC_CA_FILE: `${IDENTITY_DIR}/ca.crt`,
    });
    // No audience: the API server's own, for reading its JWKS (system:service-account-issuer-discovery only).
    token('api-server-token');
    sources.push({ configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } });
  }
  if (producer) {
    env.EVENT_TOKEN_FILE = `${IDENTITY_DIR}/broker-token`;
    token('broker-token', audienceOf('eventing.knative.dev/v1', 'Broker', namespace, 'default'));
  }
  if (deadLetterPoster) {
    env.DEAD_LETTER_TOKEN_FILE = `${IDENTITY_DIR}/dead-letters-token`;
    token('dead-letters-token', audienceOf('serving.knative.dev/v1', 'Service', namespace, 'dead-letters'));
  }
  return {
    serviceAccountName: serviceAccountOf(workload),
    receiver,
    env,
    fromConfigMap,
    volumes: sources.length ? [{ name: IDENTITY_VOLUME, projected: { sources } }] : [],
    volumeMounts: sources.length ? [{ name: IDENTITY_VOLUME, mountPath: IDENTITY_DIR, readOnly: true }] : [],
  };
}

/** A spec with the identity settings' env merged in (render.mjs and kn.mjs both read this). */
export function withEventPlane(spec, plane) {
  return {
    ...spec,
    env: { ...spec.env, ...plane.env },
    fromConfigMap: [...(spec.fromConfigMap ?? []), ...plane.fromConfigMap],
  };
}

/**
 * Every workload of the values with what its senders address and whether it posts to the Broker: each Knative
 * Service (both halves of a split function, each its own service account) and the two long-running workloads.
 */
export function workloadsOf(values) {
  const services = knativeServicesOf(values).map(({ name, spec, role }) => ({
    workload: name,
    spec,
    role,
    target: { apiVersion: 'serving.knative.dev/v1', kind: 'Service', name },
    producer: (spec.fromConfigMap ?? []).includes('K_SINK'),
  }));
  // The bridge and the tick gate get K_SINK from their SinkBindings; senders address their Kubernetes Services.
  const long = [values.bridge, values.tickGate].map((spec) => ({
    workload: spec.name,
    spec,
    target: { apiVersion: 'v1', kind: 'Service', name: spec.name },
    producer: true,
  }));
  return [...services, ...long];
}
