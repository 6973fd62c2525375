import { join } from 'node:path';
import { loadEventPolicies } from '../router/event-policies.js';

/**
 * Sender identity (Knative's authentication-oidc) on one machine: the router plays the cluster and the
 * Broker. It keeps a workload token per producer (as the kubelet projects one), refuses events at its
 * ingress without one the Broker's EventPolicy allows, signs every delivery with the Trigger's identity,
 * and serves the JWKS every receiver checks tokens against. The EventPolicies are
 * knative/overlays/oidc/event-policies.yaml.
 */
export interface LocalEventAuth {
  /** The router's settings. */
  router: Record<string, string>;
  /**
   * A receiver's settings: its audience, who may send to it (by the EventPolicies), its own tokens. `name` is the
   * component (its tokens), `target` the Service its Triggers address: a function's `<name>-events` where the
   * manifests split it (one local process serves both roles), else the component itself.
   */
  receiver(name: string, audience: string, apiVersion: string, target?: string): Record<string, string>;
}

export async function localEventAuth(options: {
  dataDir: string;
  routerPort: number;
  /** Every component that emits events: the bridge (as mqtt-bridge) and each function. */
  producers: string[];
  /**
   * The workload that posts a component's dead letters: a split function's events half (`<name>-events`, which
   * receives what it dead-letters and is the identity the dead-letters EventPolicy names), else the component.
   */
  deadLetterPosterOf?: (name: string) => string;
  knativeDir: string;
  namespace: string;
}): Promise<LocalEventAuth> {
  const tokens = join(options.dataDir, 'oidc', 'tokens');
  const poster = options.deadLetterPosterOf ?? ((name: string) => name);
  const workloadTokens = options.producers.flatMap((name) => [
    `${name}.token=kiot-${name}@eventing.knative.dev/broker/kiot/default`,
    `${name}-dead-letters.token=kiot-${poster(name)}@serving.knative.dev/service/kiot/dead-letters`,
  ]);
  const policies = await loadEventPolicies(options.knativeDir, options.namespace);
  return {
    router: {
      ROUTER_OIDC: 'on',
      ROUTER_OIDC_KEY_FILE: join(options.dataDir, 'oidc', 'issuer-key.json'),
      ROUTER_TOKENS_DIR: tokens,
      ROUTER_WORKLOAD_TOKENS: workloadTokens.join(','),
    },
    receiver: (name, audience, apiVersion, target = name) => ({
      EVENT_AUTH: 'oidc',
      EVENT_OIDC_JWKS_URL: `http://127.0.0.1:${options.routerPort}/openid/v1/jwks`,
      EVENT_AUDIENCE: audience,
      EVENT_SENDERS: policies
        .sendersTo({ apiVersion, kind: 'Service', name: target, namespace: options.namespace })
        .join(','),
      EVENT_TOKEN_FILE: join(tokens, `${name}.token`),
      DEAD_LETTER_TOKEN_FILE: join(tokens, `${name}-dead-letters.token`),
    }),
  };
}
