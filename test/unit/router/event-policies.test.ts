import { describe, expect, it } from 'vitest';
import {
  audienceOf,
  childName,
  loadEventPolicies,
  oidcServiceAccount,
} from '../../../scripts/router/event-policies.js';
import { readManifests } from '../../../scripts/router/load-manifests.js';

describe('Knative names for sender identity', () => {
  // Expected values printed by knative.dev/pkg kmeta.ChildName (v0.0.0-20260727151759-521cb33b33dd) itself, with the
  // suffix eventing builds (`-oidc-<group>-<Kind>`, lower-cased after hashing).
  it.each([
    ['mqtt-publish-to-bridge', 'mqtt-publish-to-bridge-oidc-eventing.knative.dev-trigger'],
    ['telemetry-ingest-telemetry-received', 'telemetry-ingest-telemetry-recea507b499c413ade249f58fe78c31cfd7'],
    ['jobs-tick', 'jobs-tick-oidc-eventing.knative.dev-trigger'],
    ['a', 'a-oidc-eventing.knative.dev-trigger'],
  ])('the OIDC service account of Trigger %s is %s', (name, account) => {
    expect(oidcServiceAccount('eventing.knative.dev/v1', 'Trigger', name)).toBe(account);
  });

  it('names PingSource identities and audiences the way Knative does', () => {
    expect(oidcServiceAccount('sources.knative.dev/v1', 'PingSource', 'command-dispatch-sweep')).toBe(
      'command-dispatch-sweep-oidc-sources.knative.dev-pingsource',
    );
    expect(audienceOf('eventing.knative.dev/v1', 'Broker', 'kiot', 'default')).toBe(
      'eventing.knative.dev/broker/kiot/default',
    );
    expect(audienceOf('v1', 'Service', 'kiot', 'mqtt-bridge')).toBe('/service/kiot/mqtt-bridge');
    expect(childName('x'.repeat(40), '-short').length).toBeLessThanOrEqual(63);
  });
});

describe('kiot’s EventPolicies (knative/overlays/oidc)', () => {
  it('let every Trigger deliver to its subscriber and to dead-letters, and nobody else', async () => {
    const policies = await loadEventPolicies('knative', 'kiot');
    const { triggers } = await readManifests('knative');
    expect(triggers.length).toBeGreaterThan(0);
    const deadLetters = policies.sendersTo({
      apiVersion: 'serving.knative.dev/v1',
      kind: 'Service',
      name: 'dead-letters',
      namespace: 'kiot',
    });
    for (const { manifest } of triggers) {
      const ref = manifest.spec.subscriber.ref!;
      const identity = `system:serviceaccount:kiot:${oidcServiceAccount('eventing.knative.dev/v1', 'Trigger', manifest.metadata.name)}`;
      const senders = policies.sendersTo({
        apiVersion: ref.apiVersion,
        kind: ref.kind,
        name: ref.name,
        namespace: 'kiot',
      });
      expect(senders, `${manifest.metadata.name} → ${ref.name}`).toContain(identity);
      expect(senders.some((sender) => sender.endsWith('*'))).toBe(false);
      expect(deadLetters, `${manifest.metadata.name} → dead-letters`).toContain(identity);
    }
  });

  it('let only kiot’s producers post to the Broker, the tick gate (the PingSources’ ticks) among them', async () => {
    const policies = await loadEventPolicies('knative', 'kiot');
    const senders = policies.sendersTo({
      apiVersion: 'eventing.knative.dev/v1',
      kind: 'Broker',
      name: 'default',
      namespace: 'kiot',
    });
    expect(senders).toContain('system:serviceaccount:kiot:kiot-mqtt-bridge');
    expect(senders).toContain('system:serviceaccount:kiot:kiot-tick-gate');
    expect(senders.every((sender) => sender.startsWith('system:serviceaccount:kiot:') && !sender.endsWith('*'))).toBe(
      true,
    );
    // Without a policy, Knative's default mode: any service account of the namespace.
    expect(policies.sendersTo({ apiVersion: 'v1', kind: 'Service', name: 'unknown', namespace: 'kiot' })).toEqual([
      'system:serviceaccount:kiot:*',
    ]);
  });
});
