import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair, SignJWT } from 'jose';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { BridgeHandle } from '../../../bridge/bridge.js';
import {
  audienceOf,
  loadEventPolicies,
  oidcServiceAccount,
  subjectOf,
} from '../../../scripts/router/event-policies.js';
import { type RunningRouter, routerConfigSchema, startRouter } from '../../../scripts/router/index.js';
import { createLocalIssuer, type LocalIssuer } from '../../../scripts/router/oidc.js';
import { PUBLIC_SCOPE } from '../../../shared/api-keys.js';
import { CloudEvent, toBinaryMessage } from '../../../shared/cloudevents.js';
import { loadConfig } from '../../../shared/config.js';
import { KUBERNETES_ISSUER } from '../../../shared/event-auth.js';
import { createFunctionApp } from '../../../shared/function-app.js';
import { createLogger } from '../../../shared/logger.js';
import { createFunctionServer } from '../../../shared/serve.js';
import { uniqueName } from '../../support/services.js';
import { type SinkServer, startSinkServer } from '../../support/sink-server.js';
import { collect, connectDevice, startTestBridge } from '../bridge/helpers.js';
import { type Harness, startHarness, storedSamples, TYPES } from '../telemetry-ingest/harness.js';

// Events only from the eventing plane: forged CloudEvents — no token, a token for another audience, an expired
// token, a token signed by another key, a valid token of a sender no EventPolicy allows — are refused at the
// router's Broker ingress and at the receivers (telemetry-ingest, the bridge's publish endpoint), and leave
// nothing behind; the same events with the Trigger's own token go through.
describe('sender identity (authentication-oidc) at every hop', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiot-oidc-'));
  const namespace = 'kiot';
  let issuer: LocalIssuer;
  let router: RunningRouter;
  let ingest: Harness;
  let bridge: BridgeHandle;
  let sink: SinkServer;
  let deadLetter: SinkServer;
  let device: MqttClient;
  const deviceId = uniqueName('oidc-dev');
  const trigger = (name: string) =>
    subjectOf(namespace, oidcServiceAccount('eventing.knative.dev/v1', 'Trigger', name));
  // The Triggers address telemetry-ingest's cluster-local receiver, telemetry-ingest-events (its app Service,
  // telemetry-ingest, refuses every event): the harness plays that receiver, as the manifests configure it.
  const ingestAudience = audienceOf('serving.knative.dev/v1', 'Service', namespace, 'telemetry-ingest-events');
  const bridgeAudience = audienceOf('v1', 'Service', namespace, 'mqtt-bridge');
  const brokerAudience = audienceOf('eventing.knative.dev/v1', 'Broker', namespace, 'default');

  beforeAll(async () => {
    const keyFile = join(dir, 'issuer-key.json');
    issuer = await createLocalIssuer({ keyFile, issuer: KUBERNETES_ISSUER });
    const policies = await loadEventPolicies('knative', namespace);
    router = await startRouter(
      loadConfig(routerConfigSchema, {
        PORT: '0',
        KNATIVE_DIR: 'knative',
        ROUTER_DEAD_LETTER_FILE: join(dir, 'dead-letters.jsonl'),
        ROUTER_OIDC: 'on',
        ROUTER_OIDC_KEY_FILE: keyFile,
        ROUTER_TOKENS_DIR: join(dir, 'tokens'),
        LOG_LEVEL: 'silent',
      }),
      { logger: createLogger('router', 'silent') },
    );
    const jwks = `${router.url}/openid/v1/jwks`;
    ingest = await startHarness({
      EVENT_AUTH: 'oidc',
      EVENT_OIDC_JWKS_URL: jwks,
      EVENT_AUDIENCE: ingestAudience,
      EVENT_SENDERS: policies
        .sendersTo({
          apiVersion: 'serving.knative.dev/v1',
          kind: 'Service',
          name: 'telemetry-ingest-events',
          namespace,
        })
        .join(','),
    });
    await ingest.addDevice(deviceId);
    sink = await startSinkServer();
    deadLetter = await startSinkServer();
    ({ bridge } = await startTestBridge({
      sink,
      deadLetter,
      env: {
        EVENT_AUTH: 'oidc',
        EVENT_OIDC_JWKS_URL: jwks,
        EVENT_AUDIENCE: bridgeAudience,
        EVENT_SENDERS: policies
          .sendersTo({ apiVersion: 'v1', kind: 'Service', name: 'mqtt-bridge', namespace })
          .join(','),
      },
    }));
    device = await connectDevice();
  }, 60_000);

  afterAll(async () => {
    await device?.endAsync();
    await bridge?.close();
    await ingest?.close();
    await router?.close({ drainTimeoutMs: 1_000 });
    await sink?.close();
    await deadLetter?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const post = (url: string, event: CloudEvent<unknown>, authorization?: string) => {
    const message = toBinaryMessage(event);
    return fetch(url, {
      method: 'POST',
      headers: { ...message.headers, ...(authorization ? { authorization } : {}) },
      body: message.body,
    });
  };
  const telemetry = (value: number) =>
    new CloudEvent({
      id: uniqueName('forged'),
      source: 'mqtt://forger',
      type: TYPES.telemetry,
      subject: deviceId,
      datacontenttype: 'application/json',
      data: { ts: Date.now() - 1_000, metrics: { temp: value } },
    });

  /** The forgeries of one receiver: what each token is, and the status Knative's receivers answer. */
  async function forgeries(audience: string, allowed: string): Promise<[string, string | undefined, number][]> {
    const { privateKey } = await generateKeyPair('ES256');
    const stranger = await new SignJWT({})
      // The real key id, so that only the signature gives it away.
      .setProtectedHeader({ alg: 'ES256', kid: issuer.jwks().keys[0]!.kid! })
      .setIssuer(KUBERNETES_ISSUER)
      .setSubject(allowed)
      .setAudience(audience)
      .setIssuedAt()
      .setExpirationTime('10m')
      .sign(privateKey);
    return [
      ['no token', undefined, 401],
      ['another audience', `Bearer ${await issuer.mint(allowed, 'serving.knative.dev/service/kiot/other', 600)}`, 401],
      ['an expired token', `Bearer ${await issuer.mint(allowed, audience, -120)}`, 401],
      ['another key', `Bearer ${stranger}`, 401],
      [
        'a sender no policy allows',
        `Bearer ${await issuer.mint(subjectOf(namespace, 'intruder'), audience, 600)}`,
        403,
      ],
      ['not a JWT', 'Bearer kiot_admin_notatoken', 401],
    ];
  }

  it('telemetry-ingest refuses forged telemetry and stores nothing; the Trigger’s own token is stored', async () => {
    const allowed = trigger('telemetry-ingest-telemetry-received');
    for (const [what, authorization, status] of await forgeries(ingestAudience, allowed)) {
      const answer = await post(ingest.base, telemetry(666), authorization);
      expect({ what, status: answer.status }).toEqual({ what, status });
      if (status === 401) expect(answer.headers.get('www-authenticate')).toBe('Bearer');
    }
    expect(await storedSamples(ingest, deviceId)).toEqual([]);
    const genuine = await post(ingest.base, telemetry(21), `Bearer ${await issuer.token(allowed, ingestAudience)}`);
    expect(genuine.status).toBe(204);
    expect((await storedSamples(ingest, deviceId)).map((doc) => doc.metrics.temp)).toEqual([21]);
  });

  it('the bridge publishes no forged command to a device; the Trigger’s own token is published', async () => {
    const got = await collect(device, `devices/${deviceId}/commands/#`);
    const publish = (commandId: string) =>
      new CloudEvent({
        id: uniqueName('pub'),
        source: '/forger',
        type: 'io.kiot.mqtt.publish',
        data: { topic: `devices/${deviceId}/commands/${commandId}`, payload: { name: 'unlock' }, qos: 1 },
      });
    const allowed = trigger('mqtt-publish-to-bridge');
    for (const [what, authorization, status] of await forgeries(bridgeAudience, allowed)) {
      const answer = await post(bridge.url, publish('forged'), authorization);
      expect({ what, status: answer.status }).toEqual({ what, status });
    }
    const genuine = await post(bridge.url, publish('real'), `Bearer ${await issuer.token(allowed, bridgeAudience)}`);
    expect(genuine.status).toBe(204);
    await expect.poll(() => got.map((message) => message.topic)).toContain(`devices/${deviceId}/commands/real`);
    // QoS 1 from one publisher arrives in order: the genuine one came last, and nothing before it.
    expect(got.map((message) => message.topic)).toEqual([`devices/${deviceId}/commands/real`]);
  });

  it('the Broker ingress takes events only from kiot’s producers, and delivers nothing forged', async () => {
    const ingress = `${router.url}/kiot/default`;
    for (const [what, authorization, status] of await forgeries(
      brokerAudience,
      subjectOf(namespace, 'kiot-mqtt-bridge'),
    )) {
      const answer = await post(ingress, telemetry(666), authorization);
      expect({ what, status: answer.status }).toEqual({ what, status });
    }
    await router.idle();
    expect(await storedSamples(ingest, deviceId)).not.toContainEqual(
      expect.objectContaining({ metrics: { temp: 666 } }),
    );
    const producer = await issuer.mint(subjectOf(namespace, 'kiot-mqtt-bridge'), brokerAudience, 600);
    expect((await post(ingress, telemetry(22), `Bearer ${producer}`)).status).toBe(202);
  });

  it('the router’s dead-letter stand-in refuses an event without a token too', async () => {
    expect((await post(`${router.url}/dead-letters`, telemetry(1))).status).toBe(401);
  });

  it('serves the JWKS and the discovery document receivers read', async () => {
    const discovery = (await (await fetch(`${router.url}/.well-known/openid-configuration`)).json()) as {
      issuer: string;
      jwks_uri: string;
    };
    expect(discovery.issuer).toBe(KUBERNETES_ISSUER);
    const jwks = (await (await fetch(discovery.jwks_uri)).json()) as { keys: { kty: string; d?: string }[] };
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).toMatchObject({ kty: 'EC' });
    expect(jwks.keys[0]!.d).toBeUndefined();
  });

  it('the public Service (FUNCTION_ROLE=app) refuses CloudEvents entirely; the cluster-local one serves no app route', async () => {
    const servers: Server[] = [];
    const serve = async (role: 'app' | 'events') => {
      const handler = createFunctionApp({
        service: 'split',
        logger: createLogger('split', 'silent'),
        role,
        events: [{ type: TYPES.telemetry, data: z.unknown(), handle: async () => undefined }],
        routes: [{ method: 'GET', path: '/things', scope: PUBLIC_SCOPE, handle: async () => ({ status: 200 }) }],
      });
      const server = createFunctionServer(uniqueName(`split-${role}`), handler);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      servers.push(server);
      return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    };
    const app = await serve('app');
    const events = await serve('events');
    const token = `Bearer ${await issuer.token(trigger('telemetry-ingest-telemetry-received'), ingestAudience)}`;
    const refused = await post(app, telemetry(1), token);
    expect(refused.status).toBe(403);
    expect(await refused.json()).toMatchObject({ error: { code: 'events_not_accepted' } });
    expect((await fetch(`${app}/things`)).status).toBe(200);
    expect((await fetch(`${events}/things`)).status).toBe(404);
    expect((await post(events, telemetry(1))).status).toBe(204);
    for (const server of servers) await new Promise((resolve) => server.close(resolve));
  });
});
