// The supervised local stack (`npm start` runs it after scripts/stack.sh has started the services, built
// the bundles and minted the API key): the router, the bridge and every function, each restarted when it
// dies; then the simulated fleet in the foreground. Ctrl-C stops everything in order.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { loadConfig } from '../../shared/config.js';
import { exitOnFatalErrors } from '../../shared/fatal-errors.js';
import { eventReceiverOf } from '../deploy-values.mjs';
import { FUNCTION_PORTS, stackConfigSchema } from './config.js';
import { localEventAuth } from './event-auth.js';
import { startFleetReports } from './fleet-report.js';
import { type ComponentSpec, createSupervisor } from './supervisor.js';

exitOnFatalErrors('stack');
const config = loadConfig(stackConfigSchema, process.env);
const say = (line: string) => process.stdout.write(`stack: ${line}\n`);
const logs = join(config.KIOT_DATA_DIR, 'logs');
mkdirSync(logs, { recursive: true });
const local = (port: number) => `http://127.0.0.1:${port}`;
const functions = Object.keys(FUNCTION_PORTS).filter((name) => existsSync(`dist/${name}.js`));
const ROUTER = local(config.ROUTER_PORT);
const K_SINK = `${ROUTER}/kiot/default`;
const deadLetterSink = functions.includes('dead-letters')
  ? `${local(FUNCTION_PORTS['dead-letters']!)}/`
  : `${ROUTER}/dead-letters`;

function component(name: string, port: number, env: Record<string, string | undefined> = {}): ComponentSpec {
  const logFile = join(logs, `${name}.log`);
  writeFileSync(logFile, '');
  return {
    name,
    command: process.execPath,
    args: [`dist/${name}.js`],
    // DEAD_LETTER_SINK: the bridge's refusals and telemetry-ingest's refused batch items are recorded there.
    env: {
      ...process.env,
      K_SINK,
      DEAD_LETTER_SINK: deadLetterSink,
      LOG_LEVEL: config.LOG_LEVEL,
      PORT: String(port),
      ...env,
    },
    logFile,
    healthUrl: `${local(port)}/healthz`,
  };
}

const services = [
  `mqtt-bridge=${local(config.BRIDGE_PORT)}`,
  ...functions.map((name) => `${name}=${local(FUNCTION_PORTS[name]!)}`),
].join(',');
const eventAuth =
  config.KIOT_EVENT_AUTH === 'oidc'
    ? await localEventAuth({
        dataDir: config.KIOT_DATA_DIR,
        routerPort: config.ROUTER_PORT,
        producers: ['mqtt-bridge', ...Object.keys(FUNCTION_PORTS)],
        deadLetterPosterOf: (name) => (name === 'mqtt-bridge' ? name : eventReceiverOf(name)),
        knativeDir: 'knative',
        namespace: 'kiot',
      })
    : undefined;
const router = component('router', config.ROUTER_PORT, {
  KNATIVE_DIR: 'knative',
  ROUTER_SERVICES: services,
  ROUTER_DEAD_LETTER_FILE: join(config.KIOT_DATA_DIR, 'dead-letters.jsonl'),
  // A delivery (a journal replayed at start, a backlog) waits up to 2 minutes for a function that is starting
  // or being restarted, instead of spending its retries on a closed port.
  ROUTER_SERVICE_HOLD_MS: '120000',
  ...eventAuth?.router,
});
const bridge = component('bridge', config.BRIDGE_PORT, {
  ...eventAuth?.receiver('mqtt-bridge', '/service/kiot/mqtt-bridge', 'v1'),
  BRIDGE_CLIENT_ID: 'kiot-bridge-local',
  MQTT_USERNAME: config.BRIDGE_MQTT_USERNAME,
  MQTT_PASSWORD: config.BRIDGE_MQTT_PASSWORD,
});
/** The app API keys plus the broker's (scope broker:auth), which only device-registry needs to accept. */
function withBrokerKey(keys: string | undefined, entryFile: string): string {
  const entry = JSON.parse(readFileSync(entryFile, 'utf8')) as { id: string };
  const list = (JSON.parse(keys ?? '[]') as { id: string }[]).filter((key) => key.id !== entry.id);
  return JSON.stringify([...list, entry]);
}
/** What a function needs beyond the common settings. */
function functionSettings(name: string, port: number): Record<string, string | undefined> {
  if (name === 'device-registry')
    return {
      MQTT_USERNAME: config.REGISTRY_MQTT_USERNAME,
      MQTT_PASSWORD: config.REGISTRY_MQTT_PASSWORD,
      // With hooks (the default) the broker asks the registry about each device, and registration writes nothing
      // to the broker; dynsec writes a client and a role per device (~25 devices/s).
      BROKER_ACCESS: config.KIOT_MQTT_AUTH === 'dynsec' ? 'dynsec' : 'hooks',
      ...(config.KIOT_BROKER_KEY_ENTRY
        ? { API_KEYS: withBrokerKey(process.env.API_KEYS, config.KIOT_BROKER_KEY_ENTRY) }
        : {}),
    };
  if (name === 'report-generation')
    return { SCHEDULE_TICK_SECONDS: String(config.SCHEDULE_TICK_SECONDS), PUBLIC_BASE_URL: local(port) };
  // Devices download firmware from here; a 1 s timer stands in for the PingSource and its tick chain.
  if (name === 'jobs') return { JOBS_PUBLIC_URL: local(port) };
  return {};
}
// One process per function serves both roles (FUNCTION_ROLE=all): the app API, and the events its Triggers send to
// its cluster-local `<name>-events` Service in a cluster (the router resolves that name to this process), checked
// for that Service's audience and senders.
const functionSpecs = functions.map((name) => {
  const port = FUNCTION_PORTS[name]!;
  const receiver = eventReceiverOf(name);
  return component(name, port, {
    ...eventAuth?.receiver(name, `serving.knative.dev/service/kiot/${receiver}`, 'serving.knative.dev/v1', receiver),
    ...functionSettings(name, port),
  });
});
// The web console passes /api/<capability>/… on to each function's app API, as in a cluster (console/README.md).
const consoleSpec = existsSync('dist/console.js')
  ? component('console', config.CONSOLE_PORT, {
      CONSOLE_UPSTREAMS: functions.map((name) => `${name}=${local(FUNCTION_PORTS[name]!)}`).join(','),
    })
  : undefined;
const appSpecs = consoleSpec ? [...functionSpecs, consoleSpec] : functionSpecs;

const supervisor = createSupervisor(say);
let simulator: ChildProcess | undefined;
/** What runs on timers (the fleet reports, the example rollout): cancelled when the stack stops. */
const cancels: (() => void)[] = [];
let stopping: Promise<never> | undefined;

/** Upstream first, so nothing in flight loses its consumer: devices, bridge (drains), router, functions. */
function stopStack(status: number): Promise<never> {
  stopping ??= (async () => {
    say('stopping the stack…');
    for (const cancel of cancels) cancel();
    if (simulator && simulator.exitCode === null && simulator.signalCode === null) {
      const exited = new Promise((resolve) => simulator?.once('exit', resolve));
      simulator.kill('SIGTERM');
      await exited;
    }
    await supervisor.stop('bridge');
    await supervisor.stop('router');
    await Promise.all([...functions, ...(consoleSpec ? ['console'] : [])].map((name) => supervisor.stop(name)));
    process.exit(status);
  })();
  return stopping;
}
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void stopStack(0));

// The router first: it holds the sender-identity keys and tokens, and holds its deliveries until each
// function answers its health check. Then the functions; the bridge last, so the backlog its MQTT session
// kept while the stack was down flows only once there is someone to deliver it to.
try {
  await supervisor.start(router);
  await Promise.all(appSpecs.map((spec) => supervisor.start(spec)));
  await supervisor.start(bridge);
} catch (error) {
  say(error instanceof Error ? error.message : String(error));
  await stopStack(1);
}

// The data folder as the user would type it: relative inside the repository, absolute elsewhere.
const inside = relative(process.cwd(), config.KIOT_DATA_DIR);
const dir = inside.startsWith('..') ? config.KIOT_DATA_DIR : inside;
const brokerAuth = {
  hooks: 'devices: asks device-registry (kiot-auth plugin); service accounts: dynamic security',
  dynsec: 'devices and service accounts: dynamic security, written by device-registry',
  none: 'anonymous',
};
const lines = [
  '',
  `kiot is running (logs in ${dir}/logs/; a component that dies is restarted, and a line here says so):`,
  `  mosquitto          ${config.MQTT_URL}   (${brokerAuth[config.KIOT_MQTT_AUTH]})`,
  `  redis              ${config.REDIS_URL}`,
  `  mongodb            ${config.MONGODB_URL}   (mongo-java-server, data in ${dir}/mongo.h2)`,
  `  event router       ${ROUTER}   (K_SINK ${K_SINK}; dead letters: GET /dead-letters; journal in ${dir}/router-journal)`,
  `  mqtt-bridge        ${local(config.BRIDGE_PORT)}   (/healthz, /metrics)`,
  ...functions.map((name) => `  ${name.padEnd(18)} ${local(FUNCTION_PORTS[name]!)}`),
  ...(consoleSpec
    ? [`  web console        ${local(config.CONSOLE_PORT)}/   (open it and sign in with the app API key below)`]
    : []),
  `  app API key        ${config.API_KEY}   (every scope: Authorization: Bearer <key>; kept in ${dir}/api-key.env)`,
  '',
];
process.stdout.write(`${lines.join('\n')}\n`);

// The simulated fleet registers itself with the registry and logs in with its own secrets. Its progress
// line names any component whose health check fails. Without a fleet (SIM_DEVICES=0) the stack runs until
// it is stopped.
if (config.SIM_DEVICES === 0) say('no simulated fleet (SIM_DEVICES=0): the stack runs until it is stopped');
else {
  const watched = [router, bridge, ...appSpecs].map((spec) => `${spec.name}=${spec.healthUrl}`).join(',');
  simulator = spawn(process.execPath, ['dist/simulator.js'], {
    env: {
      ...process.env,
      SIM_DEVICES: String(config.SIM_DEVICES),
      SIM_REGISTRY_URL: local(FUNCTION_PORTS['device-registry']!),
      SIM_API_KEY: config.API_KEY,
      SIM_CREDENTIALS_FILE: join(config.KIOT_DATA_DIR, 'sim-credentials.json'),
      SIM_WATCH: watched,
      ...(FUNCTION_PORTS['telemetry-ingest'] === undefined
        ? {}
        : { SIM_STORED_METRICS_URL: `${local(FUNCTION_PORTS['telemetry-ingest'])}/metrics` }),
    },
    // Its own session: a Ctrl-C reaches this process, which stops the devices first.
    stdio: ['ignore', 'inherit', 'inherit'],
    detached: true,
  });
  simulator.once('exit', (code, signal) => {
    if (stopping) return;
    if (code === 0) void stopStack(0);
    else {
      say(`the simulator ${signal ? `was killed by ${signal}` : `exited with status ${code}`}`);
      void stopStack(1);
    }
  });
}

// One example OTA rollout to the simulated fleet once it is online: it advances, ramps, and aborts when
// SIM_JOB_FAILURE_RATE is high (e.g. 0.5). KIOT_EXAMPLE_ROLLOUT=0 leaves it out.
if (functions.includes('jobs') && config.KIOT_EXAMPLE_ROLLOUT && config.SIM_DEVICES > 0) {
  const rollout = setTimeout(() => {
    spawn(process.execPath, ['dist/simulator.js', 'example-rollout'], {
      env: { ...process.env, SIM_JOBS_URL: local(FUNCTION_PORTS.jobs!), SIM_API_KEY: config.API_KEY },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
  }, config.KIOT_ROLLOUT_AFTER * 1000);
  cancels.push(() => clearTimeout(rollout));
}

if (functions.includes('report-generation')) {
  cancels.push(
    startFleetReports({
      reportsUrl: local(FUNCTION_PORTS['report-generation']!),
      apiKey: config.API_KEY,
      file: join(config.KIOT_DATA_DIR, 'fleet-report.html'),
      firstAfterMs: config.KIOT_REPORT_AFTER * 1000,
      say,
    }),
  );
}
