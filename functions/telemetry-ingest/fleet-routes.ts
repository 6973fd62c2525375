import type { DeviceDirectory } from '../../shared/devices.js';
import { deviceIdSchema } from '../../shared/devices.js';
import { InvalidInputError, NotFoundError, parseInput as parse } from '../../shared/errors.js';
import type { HttpRequest } from '../../shared/function-app.js';
import { queryObject } from '../../shared/http-io.js';
import { type ApiOperation, operation, problem, appProblems as problems } from '../../shared/openapi.js';
import { createSseStream } from '../../shared/sse-stream.js';
import type { AlertsRepository } from './alerts-repository.js';
import type { LiveFeed } from './live-feed.js';
import type { LiveHub } from './live-hub.js';
import type { PresenceRepository } from './presence-repository.js';
import { presencePageSchema, presenceQuerySchema, telemetrySummarySchema } from './schema.js';

export interface FleetRouteDeps {
  devices: DeviceDirectory;
  presence: PresenceRepository;
  alerts: AlertsRepository;
  live: LiveFeed;
  hub: LiveHub;
  stream: { heartbeatMs: number; maxDurationMs: number; maxQueue: number };
  now(): number;
}

const RATE_WINDOW_SECONDS = 60;
const AVERAGE_SECONDS = 10;

function deviceIdOf(request: HttpRequest): string {
  const parsed = deviceIdSchema.safeParse(request.params.id);
  if (!parsed.success) throw InvalidInputError.fromZod(parsed.error, 'the device id is invalid');
  return parsed.data;
}

/** The fleet's live side: who is online, messages per second, open alerts, and a device's samples as they are stored. */
export function fleetRoutes(deps: FleetRouteDeps): ApiOperation[] {
  return [
    operation({
      method: 'GET',
      path: '/telemetry-summary',
      scope: 'telemetry:read',
      summary: 'Devices online, messages stored per second (last minute), open alerts: a fleet overview',
      responses: { 200: { description: 'the figures now', schema: telemetrySummarySchema }, ...problems },
      async handle() {
        const now = deps.now();
        const [online, rate, openAlerts] = await Promise.all([
          deps.presence.countOnline(),
          deps.live.rate(RATE_WINDOW_SECONDS, now),
          deps.alerts.countActive(),
        ]);
        const recent = rate.slice(-AVERAGE_SECONDS).reduce((sum, second) => sum + second.messages, 0);
        return {
          status: 200,
          body: { online, messagesPerSecond: recent / AVERAGE_SECONDS, rate, openAlerts },
          headers: { 'cache-control': 'no-store' },
        };
      },
    }),
    operation({
      method: 'GET',
      path: '/presence',
      scope: 'telemetry:read',
      summary:
        'Presence of some devices (?ids=a,b; with status=online, those of them online), ' +
        'or the devices online now, most recently connected first',
      query: presenceQuerySchema,
      responses: { 200: { description: 'presence per device', schema: presencePageSchema }, ...problems },
      async handle(request) {
        const query = parse(presenceQuerySchema, queryObject(request.query), 'query');
        if (query.ids) {
          const found = await deps.presence.getMany(query.ids);
          const items = query.ids.map((deviceId, i) => ({ deviceId, ...found[i]! }));
          const wanted = query.status === undefined ? items : items.filter((item) => item.status === query.status);
          return { status: 200, body: { items: wanted, nextOffset: null } };
        }
        const page = await deps.presence.listOnline(query.offset, query.limit + 1);
        const items = page.slice(0, query.limit);
        const found = await deps.presence.getMany(items.map((item) => item.deviceId));
        return {
          status: 200,
          body: {
            items: items.map((item, i) => ({ deviceId: item.deviceId, ...found[i]! })),
            nextOffset: page.length > query.limit ? query.offset + query.limit : null,
          },
        };
      },
    }),
    operation({
      method: 'GET',
      path: '/devices/:id/telemetry/stream',
      params: { id: deviceIdSchema },
      scope: 'telemetry:read',
      summary:
        "A device's samples as they are stored: server-sent events (`ready` once live, then `samples`; " +
        '`gap`: re-read the API; `reconnect`: the stream ends, reconnect)',
      responses: {
        200: { description: 'text/event-stream' },
        ...problems,
        404: problem('unknown device'),
        503: problem('Redis is unavailable'),
      },
      async handle(request) {
        const deviceId = deviceIdOf(request);
        if (!(await deps.devices.device(deviceId)))
          throw new NotFoundError(`device ${deviceId} is not registered`, 'unknown_device');
        let stop: (() => void) | undefined;
        const stream = createSseStream({
          ...deps.stream,
          retryMs: 2_000,
          onClose: () => stop?.(),
        });
        try {
          stop = await deps.hub.listen(deviceId, (signal) => {
            if (signal.kind === 'gap') stream.send('gap', { reason: 'the live feed reconnected' });
            else stream.send('samples', signal.message.samples);
          });
        } catch (error) {
          stream.end();
          throw error;
        }
        // Subscribed: what is stored from now on reaches this stream; the client reads what came before.
        stream.send('ready', { deviceId, at: new Date(deps.now()).toISOString() });
        return {
          status: 200,
          body: stream,
          headers: {
            'content-type': 'text/event-stream; charset=utf-8',
            'cache-control': 'no-store',
            // nginx-style proxies buffer responses unless told not to.
            'x-accel-buffering': 'no',
          },
        };
      },
    }),
  ];
}
