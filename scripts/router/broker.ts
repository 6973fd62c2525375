import { CloudEvent } from '../../shared/cloudevents.js';
import { InvalidInputError, NotFoundError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import type { DeadLetterFile } from './dead-letter-file.js';
import { type DeliverDeps, deliverToTrigger } from './deliver.js';
import type { Topology } from './load-manifests.js';
import type { RouterMetrics } from './metrics.js';

/** Knative MT broker: `knativebrokerttl` counts the hops an event may still take (reply loops end). */
export const TTL_EXTENSION = 'knativebrokerttl';
/** The broker ingress's default (and maximum) TTL: env `MAX_TTL`, 255 in Knative's mt-broker-ingress. */
export const DEFAULT_TTL = 255;

export interface BrokerCore {
  /** The broker ingress: accepts an event (or throws 404/400) and fans it out in the background. */
  ingest(event: CloudEvent<unknown>, broker: string): void;
  /** Resolves when every delivery in flight has ended (a dead-letter record counts as an end). */
  drain(): Promise<void>;
}

export interface BrokerCoreDeps extends Omit<DeliverDeps, 'reingest'> {
  topology: Topology;
  deadLetters: DeadLetterFile;
  metrics: RouterMetrics;
  logger: Logger;
}

function ttlOf(event: CloudEvent<unknown>): number {
  const raw = (event as unknown as Record<string, unknown>)[TTL_EXTENSION];
  const ttl = typeof raw === 'number' ? raw : typeof raw === 'string' && /^-?\d+$/.test(raw) ? Number(raw) : undefined;
  return ttl ?? DEFAULT_TTL;
}

/** The event as a subscriber sees it: no broker TTL, and the ingress's arrival time (as Knative sets it). */
function forSubscribers(event: CloudEvent<unknown>): CloudEvent<unknown> {
  const { [TTL_EXTENSION]: _ttl, ...attributes } = event as unknown as Record<string, unknown>;
  return new CloudEvent<unknown>({ ...attributes, knativearrivaltime: new Date().toISOString() }, false);
}

export function createBrokerCore(deps: BrokerCoreDeps): BrokerCore {
  const inFlight = new Set<Promise<void>>();

  const track = (work: Promise<void>) => {
    const tracked = work.catch((error: unknown) => {
      // Only the dead-letter file itself failing gets here: say so loudly, it is the one way to lose an event.
      deps.logger.fatal({ err: error }, 'could not record an undeliverable event');
    });
    inFlight.add(tracked);
    void tracked.finally(() => inFlight.delete(tracked));
  };

  const core: BrokerCore = {
    ingest(event, broker) {
      // Step 1: the broker must exist (Knative's ingress answers 404 for an unknown broker).
      const route = deps.topology.brokers.get(broker);
      if (!route) throw new NotFoundError(`no broker ${broker}`, 'unknown_broker');

      // Step 2: TTL, decremented at every ingress (Knative TTLDefaulter); exhausted means a reply loop.
      const ttl = ttlOf(event) - 1;
      if (ttl <= 0) throw new InvalidInputError(`the event's ${TTL_EXTENSION} is exhausted`, { ttl }, 'ttl_exhausted');

      // Step 3: accepted; fan out to every Trigger whose filter matches, concurrently.
      deps.metrics.accepted.inc({ broker });
      const delivered = forSubscribers(event);
      for (const trigger of route.triggers) {
        if (!trigger.matches(delivered)) continue;
        track(deliverToTrigger({ event: delivered, ttl, broker, trigger }, { ...deps, reingest }));
      }
    },
    async drain() {
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    },
  };

  // Step 4 (from a delivery): a reply keeps the TTL of the event it answers and re-enters the ingress.
  async function reingest(reply: CloudEvent<unknown>, broker: string, ttl: number): Promise<void> {
    const withTtl = reply.cloneWith({ [TTL_EXTENSION]: ttl }, false) as CloudEvent<unknown>;
    try {
      core.ingest(withTtl, broker);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      deps.logger.error(
        { broker, ce: { id: reply.id, type: reply.type, subject: reply.subject }, error: message },
        'reply event dead-lettered',
      );
      await deps.deadLetters.append({ reason: 'ttl_exhausted', broker, error: message, event: reply });
    }
  }

  return core;
}
