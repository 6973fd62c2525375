import type { EventDispatcher } from '../../shared/event-transport.js';
import type { Logger } from '../../shared/logger.js';

/** Long enough for a loaded machine, short enough that a stuck warm-up never holds the start for long. */
const WARM_UP_TIMEOUT_MS = 2_000;

/**
 * Readies the delivery path before the first event instead of on it. The dispatcher loads undici on its first
 * request (shared/event-transport.ts: right for a function that scales from zero, wrong for the router, which
 * runs for hours), and undici compiles its HTTP parser on its first connection: on a freshly started router the
 * first deliveries waited for both while every event of that moment queued behind them (its first second of
 * paced events cost ~470 ms of router CPU against ~250 in the seconds after). A `GET /healthz` to the router
 * itself through the dispatcher pays both now: the router listens already and answers it whatever else is up.
 * The Services are not asked: they may start after the router (npm start), a subscriber is no health endpoint
 * in general, and a loopback connection costs nothing next to the above. A failure here stops nothing: the
 * first deliveries then pay as before.
 */
export async function warmDelivery(options: { dispatcher: EventDispatcher; self: string; logger: Logger }) {
  try {
    const response = await options.dispatcher.request({
      origin: options.self,
      path: '/healthz',
      method: 'GET',
      headersTimeout: WARM_UP_TIMEOUT_MS,
      bodyTimeout: WARM_UP_TIMEOUT_MS,
    });
    await response.body.dump();
  } catch (error) {
    options.logger.warn({ err: error }, 'could not warm up the delivery path; the first deliveries will');
  }
}
