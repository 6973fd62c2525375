import { setMaxListeners } from 'node:events';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import pLimit from 'p-limit';
import type { Registry } from 'prom-client';
import { z } from 'zod';
import { baseConfigSchema } from '../../shared/config.js';
import { KUBERNETES_ISSUER } from '../../shared/event-auth.js';
import { createEventDispatcher, type EventDispatcher } from '../../shared/event-transport.js';
import { createLogger, type Logger } from '../../shared/logger.js';
import { createBrokerCore } from './broker.js';
import { createDeadLetterFile } from './dead-letter-file.js';
import { serviceMapSchema } from './destinations.js';
import { audienceOf, loadEventPolicies } from './event-policies.js';
import { createRouterServer } from './http-server.js';
import { memoryOnly, openJournal } from './journal.js';
import { loadTopology, type Topology, type TriggerRoute } from './load-manifests.js';
import { createRouterMetrics } from './metrics.js';
import { createLocalIssuer, keepWorkloadTokens, parseWorkloadTokens } from './oidc.js';
import { sendEvent } from './send.js';
import { createServiceReadiness } from './service-readiness.js';
import { warmDelivery } from './warm-up.js';

/**
 * The local event router: stands in for the Knative Broker on one machine, routing by the Brokers and
 * Triggers in `knative/` so that local routing is production routing.
 */
export const routerConfigSchema = baseConfigSchema.extend({
  KNATIVE_DIR: z.string().min(1).default('knative'),
  /** `mqtt-bridge=http://127.0.0.1:8090,telemetry-ingest=http://127.0.0.1:8103` (or `namespace/name=url`). */
  ROUTER_SERVICES: serviceMapSchema.prefault(''),
  ROUTER_DEAD_LETTER_FILE: z.string().min(1).default('.kiot/dev/dead-letters.jsonl'),
  /**
   * `on`: an event is answered 202 only once it is journaled on disk, and what a crash interrupted is
   * delivered at the next start. `off`: accepted events live in memory only (Knative's InMemoryChannel).
   */
  ROUTER_JOURNAL: z.enum(['on', 'off']).default('on'),
  /** Default: `router-journal/` beside the dead-letter file (so whoever gives the router a folder gives it both). */
  ROUTER_JOURNAL_DIR: z.string().min(1).optional(),
  /** A journal segment is closed at this size; closed segments are deleted once all their events are delivered. */
  ROUTER_JOURNAL_SEGMENT_BYTES: z.coerce
    .number()
    .int()
    .min(4_096)
    .default(64 * 1_048_576),
  /** The namespace of manifests that name none (`kubectl apply -n kiot`). */
  ROUTER_NAMESPACE: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/)
    .default('kiot'),
  ROUTER_HOST: z.string().min(1).default('127.0.0.1'),
  /** Sends in flight at once, across all Triggers. */
  ROUTER_CONCURRENCY: z.coerce.number().int().min(1).max(10_000).default(64),
  ROUTER_MAX_BODY_BYTES: z.coerce
    .number()
    .int()
    .min(1_024)
    .default(4 * 1_048_576),
  /**
   * On SIGTERM/SIGINT: how long deliveries may finish before the rest is left in the journal (or, without
   * one, written to the dead-letter file).
   */
  ROUTER_DRAIN_TIMEOUT_MS: z.coerce.number().int().min(0).default(10_000),
  /**
   * How long a delivery to a Service of ROUTER_SERVICES waits for it to answer `GET /healthz` while it is known to
   * be down (not yet up, or refusing connections), before the Trigger's retries take over (service-readiness.ts).
   * 0: never wait (Triggers retry at once, as against a cluster Service without the activator).
   */
  ROUTER_SERVICE_HOLD_MS: z.coerce.number().int().min(0).default(0),
  /**
   * `on`: the router plays Knative's sender identity on both sides (scripts/router/oidc.ts): the ingress refuses
   * events without a producer token the Broker's EventPolicies allow, every delivery carries a token signed with
   * a local issuer key, and the JWKS is served at `/openid/v1/jwks`.
   */
  ROUTER_OIDC: z.enum(['on', 'off']).default('off'),
  ROUTER_OIDC_KEY_FILE: z.string().min(1).default('.kiot/dev/oidc/issuer-key.json'),
  ROUTER_OIDC_ISSUER: z.string().min(1).default(KUBERNETES_ISSUER),
  /** Workload tokens the router keeps fresh for local producers: `file=serviceaccount@audience,…` under ROUTER_TOKENS_DIR. */
  ROUTER_WORKLOAD_TOKENS: z.string().default(''),
  ROUTER_TOKENS_DIR: z.string().min(1).default('.kiot/dev/oidc/tokens'),
});

export type RouterConfig = z.infer<typeof routerConfigSchema>;

export interface RouterDeps {
  logger?: Logger;
  registry?: Registry;
  dispatcher?: EventDispatcher;
}

export interface RunningRouter {
  /** `http://host:port`; the broker ingress is `${url}/<namespace>/<broker>`. */
  url: string;
  port: number;
  topology: Topology;
  /** Resolves once every accepted event has reached a subscriber, a dead-letter sink or the file. */
  idle(): Promise<void>;
  /**
   * Stops accepting, lets deliveries finish for up to `drainTimeoutMs`, then leaves the rest in the journal
   * for the next start (without a journal: records them as dead letters).
   */
  close(options?: { drainTimeoutMs?: number }): Promise<void>;
}

export async function startRouter(config: RouterConfig, deps: RouterDeps = {}): Promise<RunningRouter> {
  const logger = deps.logger ?? createLogger('router', config.LOG_LEVEL);
  const topology = await loadTopology({
    dir: config.KNATIVE_DIR,
    namespace: config.ROUTER_NAMESPACE,
    services: config.ROUTER_SERVICES,
  });
  for (const warning of topology.warnings)
    logger.warn({ warning }, 'events for this Trigger will go to the dead-letter file');

  const deadLetters = createDeadLetterFile(config.ROUTER_DEAD_LETTER_FILE);
  const journalDir = config.ROUTER_JOURNAL_DIR ?? join(dirname(config.ROUTER_DEAD_LETTER_FILE), 'router-journal');
  const journal =
    config.ROUTER_JOURNAL === 'on'
      ? await openJournal({ dir: journalDir, segmentBytes: config.ROUTER_JOURNAL_SEGMENT_BYTES, logger })
      : memoryOnly();
  const metrics = createRouterMetrics(deps.registry, () => journal.pending());
  const dispatcher = deps.dispatcher ?? createEventDispatcher(config.ROUTER_CONCURRENCY);
  const stopping = new AbortController();
  // Every backoff wait and held delivery listens for the stop: thousands at once are normal, not a leak.
  setMaxListeners(0, stopping.signal);
  // Sender identity: the local issuer, the EventPolicies of knative/ (the `oidc` overlay), the workload tokens.
  const oidc = config.ROUTER_OIDC === 'on' ? await startOidc(config, logger) : undefined;
  const core = createBrokerCore({
    topology,
    deadLetters,
    journal,
    metrics,
    logger,
    dispatcher,
    limiter: pLimit(config.ROUTER_CONCURRENCY),
    signal: stopping.signal,
    send: sendEvent,
    readiness: createServiceReadiness({
      services: config.ROUTER_SERVICES,
      signal: stopping.signal,
      logger,
      holdMs: config.ROUTER_SERVICE_HOLD_MS,
    }),
    ...(oidc ? { credentials: oidc.credentials } : {}),
  });
  const brokers = [...topology.brokers.keys()];
  const server = createRouterServer({
    core,
    deadLetters,
    metrics,
    logger,
    brokers: () => brokers,
    maxBodyBytes: config.ROUTER_MAX_BODY_BYTES,
    ...(oidc ? { oidc: oidc.http } : {}),
  });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.PORT, config.ROUTER_HOST, () => resolve());
    });
  } catch (error) {
    await journal.close();
    throw error;
  }
  const { port } = server.address() as AddressInfo;
  const host = config.ROUTER_HOST === '0.0.0.0' || config.ROUTER_HOST === '::' ? '127.0.0.1' : config.ROUTER_HOST;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  logger.info(
    {
      url,
      brokers: brokers.map((key) => `${url}/${key}`),
      triggers: brokers.reduce((n, key) => n + topology.brokers.get(key)!.triggers.length, 0),
      deadLetterFile: deadLetters.path,
      journal: journal.enabled ? journalDir : 'off',
    },
    'router listening',
  );
  // What a crash (or a stop mid-delivery) left undelivered goes out first.
  if (journal.unfinished.length > 0) {
    logger.info({ events: journal.unfinished.length }, 'delivering what the journal holds from the last run');
    metrics.replayed.inc(journal.unfinished.length);
    core.replay(journal.unfinished);
  }
  await warmDelivery({ dispatcher, self: url, logger });

  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    topology,
    idle: () => core.drain(),
    close(options = {}) {
      closing ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, options.drainTimeoutMs ?? 10_000);
        });
        await Promise.race([core.drain(), timeout]);
        clearTimeout(timer);
        // Whatever is still waiting for a retry gives up now, leaving a dead-letter record.
        stopping.abort();
        await core.drain();
        oidc?.stop();
        await closed;
        await journal.close();
        await deadLetters.close();
        if (!deps.dispatcher) await dispatcher.close();
      })();
      return closing;
    },
  };
}

async function startOidc(config: RouterConfig, logger: Logger) {
  const issuer = await createLocalIssuer({ keyFile: config.ROUTER_OIDC_KEY_FILE, issuer: config.ROUTER_OIDC_ISSUER });
  const policies = await loadEventPolicies(config.KNATIVE_DIR, config.ROUTER_NAMESPACE);
  const tokens = keepWorkloadTokens(
    issuer,
    parseWorkloadTokens(config.ROUTER_WORKLOAD_TOKENS, config.ROUTER_TOKENS_DIR),
    config.ROUTER_NAMESPACE,
    (error) => logger.error({ err: error }, 'could not renew a workload token'),
  );
  await tokens.ready;
  const namespace = config.ROUTER_NAMESPACE;
  return {
    stop: tokens.stop,
    credentials: async (
      trigger: TriggerRoute,
      target: 'subscriber' | 'dead-letter-sink',
    ): Promise<Record<string, string>> => {
      // A target without an audience gets no token (Knative's dispatcher does the same).
      const audience = target === 'subscriber' ? trigger.audiences.subscriber : trigger.audiences.deadLetterSink;
      return audience ? { authorization: `Bearer ${await issuer.token(trigger.identity, audience)}` } : {};
    },
    http: {
      issuer,
      brokerSenders: (broker: string) => {
        const [brokerNamespace, name] = broker.split('/') as [string, string];
        return policies.sendersTo({
          apiVersion: 'eventing.knative.dev/v1',
          kind: 'Broker',
          name,
          namespace: brokerNamespace,
        });
      },
      deadLetters: {
        audience: audienceOf('serving.knative.dev/v1', 'Service', namespace, 'dead-letters'),
        senders: policies.sendersTo({
          apiVersion: 'serving.knative.dev/v1',
          kind: 'Service',
          name: 'dead-letters',
          namespace,
        }),
      },
    },
  };
}
