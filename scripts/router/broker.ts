import { CloudEvent } from '../../shared/cloudevents.js';
import { DependencyUnavailableError, InvalidInputError, NotFoundError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import type { DeadLetterFile } from './dead-letter-file.js';
import { type DeliverDeps, deliverToTrigger } from './deliver.js';
import type { EventJournal, JournaledEvent } from './journal.js';
import type { Topology, TriggerRoute } from './load-manifests.js';
import type { RouterMetrics } from './metrics.js';

/** Knative MT broker: `knativebrokerttl` counts the hops an event may still take (reply loops end). */
export const TTL_EXTENSION = 'knativebrokerttl';
/** The broker ingress's default (and maximum) TTL: env `MAX_TTL`, 255 in Knative's mt-broker-ingress. */
export const DEFAULT_TTL = 255;

export interface BrokerCore {
  /**
   * The broker ingress: accepts an event (or rejects with 404/400, or 503 when it cannot be journaled),
   * resolving once it is durable; it is then fanned out in the background.
   */
  ingest(event: CloudEvent<unknown>, broker: string): Promise<void>;
  /** Delivers what the journal says an earlier run accepted and did not finish. */
  replay(events: readonly JournaledEvent[]): void;
  /** Resolves when every delivery in flight has ended (a dead-letter record counts as an end). */
  drain(): Promise<void>;
}

export interface BrokerCoreDeps extends Omit<DeliverDeps, 'reingest' | 'keepUnfinished'> {
  topology: Topology;
  deadLetters: DeadLetterFile;
  journal: EventJournal;
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
  const triggersByKey = new Map<string, TriggerRoute>();
  for (const route of deps.topology.brokers.values())
    for (const trigger of route.triggers) triggersByKey.set(trigger.key, trigger);
  // With a journal, a delivery cut short by a stop stays journaled for the next start.
  const deliverDeps: DeliverDeps = { ...deps, reingest, keepUnfinished: deps.journal.enabled };

  const dispatch = (seq: number, event: CloudEvent<unknown>, ttl: number, broker: string, trigger: TriggerRoute) => {
    const work = deliverToTrigger({ event, ttl, broker, trigger }, deliverDeps).then((end) => {
      if (end === 'ended') deps.journal.done(seq, trigger.key);
    });
    const tracked = work.catch((error: unknown) => {
      // The dead-letter file or the journal failing: the only ways an event can be lost. With a journal
      // the delivery is not marked as ended, so the next start tries it again.
      deps.logger.fatal({ err: error, trigger: trigger.key, ce: { id: event.id } }, 'could not finish a delivery');
    });
    inFlight.add(tracked);
    void tracked.finally(() => inFlight.delete(tracked));
  };

  const core: BrokerCore = {
    async ingest(event, broker) {
      // Step 1: the broker must exist (Knative's ingress answers 404 for an unknown broker).
      const route = deps.topology.brokers.get(broker);
      if (!route) throw new NotFoundError(`no broker ${broker}`, 'unknown_broker');

      // Step 2: TTL, decremented at every ingress (Knative TTLDefaulter); exhausted means a reply loop.
      const ttl = ttlOf(event) - 1;
      if (ttl <= 0) throw new InvalidInputError(`the event's ${TTL_EXTENSION} is exhausted`, { ttl }, 'ttl_exhausted');

      // Step 3: the Triggers whose filter matches; the event and that list go to the journal before the 202.
      const delivered = forSubscribers(event);
      const triggers = route.triggers.filter((trigger) => trigger.matches(delivered));
      const seq =
        triggers.length === 0
          ? 0
          : await deps.journal.accept({
              broker,
              ttl,
              triggers: triggers.map((trigger) => trigger.key),
              event: delivered.toJSON() as Record<string, unknown>,
            });
      deps.metrics.accepted.inc({ broker });

      // Step 4: fan out to those Triggers, concurrently.
      for (const trigger of triggers) dispatch(seq, delivered, ttl, broker, trigger);
    },
    replay(events) {
      for (const journaled of events) {
        const event = new CloudEvent<unknown>(journaled.event, false);
        for (const key of journaled.triggers) {
          const trigger = triggersByKey.get(key);
          if (trigger) {
            dispatch(journaled.seq, event, journaled.ttl, journaled.broker, trigger);
            continue;
          }
          // Knative drops what a deleted Trigger had not delivered; say so, and forget it.
          deps.logger.warn(
            { trigger: key, ce: { id: event.id, type: event.type } },
            'journaled for a Trigger that no longer exists',
          );
          deps.journal.done(journaled.seq, key);
        }
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
      await core.ingest(withTtl, broker);
    } catch (error) {
      // The journal failing is no verdict on the reply: the delivery stays unfinished and is tried again.
      if (error instanceof DependencyUnavailableError) throw error;
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
