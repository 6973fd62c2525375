import { z } from 'zod';
import { mongoFields, mqttFields, redisFields } from '../../shared/config.js';

const port = (fallback: number) => z.coerce.number().int().min(1).max(65_535).default(fallback);

/** What scripts/stack.sh hands the supervised stack: where the services are, ports, the fleet. */
export const stackConfigSchema = z.object({
  MQTT_URL: mqttFields.MQTT_URL,
  ...redisFields,
  MONGODB_URL: mongoFields.MONGODB_URL,
  /** The stack's data (scripts/stack.sh: .kiot/dev): logs/, the router's journal and dead letters, keys, the fleet report. */
  KIOT_DATA_DIR: z.string().min(1),
  /** The local admin API key (scripts/stack.sh mints it): the simulator registers its fleet with it. */
  API_KEY: z.string().min(1),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  ROUTER_PORT: port(8080),
  /** Sender identity between the components (scripts/stack/event-auth.ts): on unless `off`. */
  KIOT_EVENT_AUTH: z.enum(['oidc', 'off']).default('oidc'),
  BRIDGE_PORT: port(8090),
  /** The web console (console/): the page and its same-origin proxy to the functions' app APIs. */
  CONSOLE_PORT: port(8100),
  /**
   * How the broker authenticates devices (scripts/services.sh): `hooks` asks device-registry (the kiot-auth plugin),
   * `dynsec` holds a client per device that the registry writes, `none` lets anyone in.
   */
  KIOT_MQTT_AUTH: z.enum(['hooks', 'dynsec', 'none']).default('none'),
  /** The service accounts' broker credentials (dynamic security; hooks and dynsec). */
  KIOT_DYNSEC_ENV: z.string().min(1).optional(),
  /** With hooks: the API_KEYS entry of the key the broker presents to device-registry (scope broker:auth). */
  KIOT_BROKER_KEY_ENTRY: z.string().min(1).optional(),
  /** Broker accounts (dynamic security) of the bridge and the registry, when the broker enforces them. */
  BRIDGE_MQTT_USERNAME: z.string().min(1).optional(),
  BRIDGE_MQTT_PASSWORD: z.string().min(1).optional(),
  REGISTRY_MQTT_USERNAME: z.string().min(1).optional(),
  REGISTRY_MQTT_PASSWORD: z.string().min(1).optional(),
  /** Locally a timer stands in for the PingSources of report-generation (rollups, due schedules). */
  SCHEDULE_TICK_SECONDS: z.coerce.number().int().min(0).default(60),
  /** The simulated fleet; 0 runs the stack without one until it is stopped. */
  SIM_DEVICES: z.coerce.number().int().min(0).default(20),
  /** One example OTA rollout to the fleet (jobs), this many seconds after the fleet started; 0 leaves it out. */
  KIOT_EXAMPLE_ROLLOUT: z
    .enum(['0', '1'])
    .default('1')
    .transform((value) => value === '1'),
  KIOT_ROLLOUT_AFTER: z.coerce.number().min(0).default(15),
  /** Seconds before the first fleet report (then one every five minutes). */
  KIOT_REPORT_AFTER: z.coerce.number().min(0).default(60),
});

export type StackConfig = z.infer<typeof stackConfigSchema>;

/** The functions `npm start` runs, each on a fixed local port. */
export const FUNCTION_PORTS: Readonly<Record<string, number>> = {
  'device-registry': 8101,
  'command-dispatch': 8102,
  'telemetry-ingest': 8103,
  'report-generation': 8104,
  'dead-letters': 8105,
  jobs: 8106,
  'api-keys': 8107,
};
