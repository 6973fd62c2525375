import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../../shared/logger.js';
import { probeHealth } from '../stack/health.js';
import type { ServiceMap } from './destinations.js';

/**
 * Deliveries to a local Service wait while it is known to be down, as Knative's activator holds the requests
 * of a revision that has no ready pod instead of letting them fail: before the Service's first answer to
 * `GET /healthz`, and again after a connection to it was refused (it died; the stack restarts it), until its
 * health check answers. So a journal replayed at start, or the MQTT backlog the bridge hands over, waits for
 * the functions instead of spending its retries (and ending as dead letters) on a port nobody listens on yet.
 * The hold is bounded (`holdMs`, like the activator's timeout): a Service that stays down gets the Trigger's
 * retries and dead-letter sink as in a cluster. URLs that are no Service of the map (a Trigger's absolute
 * `uri`) never wait.
 */
export interface ServiceReadiness {
  /** Nothing when a send to `url` may go out now; else a promise that resolves when it may. */
  ready(url: string): Promise<void> | undefined;
  /** A send to `url` was refused or lost its connection: later sends to its Service wait for its health check. */
  refused(url: string): void;
}

interface Health {
  up: boolean;
  waiting?: Promise<void>;
}

const originOf = (url: string): string | undefined => {
  try {
    return new URL(url).origin;
  } catch {
    return undefined;
  }
};

export function createServiceReadiness(options: {
  services: ServiceMap;
  signal: AbortSignal;
  logger: Logger;
  holdMs: number;
  intervalMs?: number;
  probe?: (url: string) => Promise<boolean>;
}): ServiceReadiness {
  const probe = options.probe ?? ((url: string) => probeHealth(url, 1_000));
  const byOrigin = new Map<string, Health>();
  for (const base of options.services.values()) {
    const origin = originOf(base);
    if (origin) byOrigin.set(origin, { up: false });
  }

  async function waitUntilUp(origin: string, health: Health): Promise<void> {
    const deadline = Date.now() + options.holdMs;
    let answered = false;
    while (!options.signal.aborted && Date.now() < deadline) {
      answered = await probe(`${origin}/healthz`);
      if (answered) break;
      await sleep(options.intervalMs ?? 200, undefined, { signal: options.signal }).catch(() => undefined);
    }
    if (!answered && !options.signal.aborted)
      options.logger.warn(
        { service: origin, heldMs: options.holdMs },
        'a Service did not answer its health check; delivering to it with the Trigger retries',
      );
    health.up = true;
    health.waiting = undefined;
  }

  return {
    ready(url) {
      const origin = originOf(url);
      const health = origin === undefined ? undefined : byOrigin.get(origin);
      if (!health || health.up || options.holdMs === 0) return undefined;
      health.waiting ??= waitUntilUp(origin!, health);
      return health.waiting;
    },
    refused(url) {
      const origin = originOf(url);
      const health = origin === undefined ? undefined : byOrigin.get(origin);
      if (health) health.up = false;
    },
  };
}
