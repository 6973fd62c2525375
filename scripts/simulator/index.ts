import { readFileSync } from 'node:fs';
import { loadConfig } from '../../shared/config.js';
import { exitOnFatalErrors } from '../../shared/fatal-errors.js';
import { type SimulatorConfig, simulatorConfigSchema } from './config.js';
import { type DeviceCounters, SimulatedDevice } from './device.js';
import { exampleRollout } from './example-rollout.js';
import { watchHealth } from './health-watch.js';
import { registerFleet } from './register-fleet.js';
import { watchStoredRate } from './stored-rate.js';

async function fleetCredentials(config: SimulatorConfig): Promise<[string, string | undefined][]> {
  const ids = Array.from(
    { length: config.SIM_DEVICES },
    (_, i) => `${config.SIM_PREFIX}-${String(i + 1).padStart(4, '0')}`,
  );
  if (config.SIM_REGISTRY_URL && config.SIM_API_KEY && config.SIM_CREDENTIALS_FILE) {
    const secrets = await registerFleet({
      registryUrl: config.SIM_REGISTRY_URL,
      apiKey: config.SIM_API_KEY,
      ids,
      file: config.SIM_CREDENTIALS_FILE,
    });
    return ids.map((id) => [id, secrets[id]]);
  }
  if (config.SIM_CREDENTIALS_FILE) {
    const credentials = JSON.parse(readFileSync(config.SIM_CREDENTIALS_FILE, 'utf8')) as Record<string, string>;
    return Object.entries(credentials).slice(0, config.SIM_DEVICES);
  }
  return ids.map((id) => [id, undefined]);
}

function protocolFor(config: SimulatorConfig, index: number): 4 | 5 {
  if (config.SIM_PROTOCOL === '3.1.1') return 4;
  if (config.SIM_PROTOCOL === '5') return 5;
  return index % 2 === 0 ? 5 : 4;
}

/** The simulated fleet of the main command: N devices over MQTT at a configurable rate, with a progress line. */
async function main(): Promise<void> {
  const config = loadConfig(simulatorConfigSchema, process.env);
  const counters: DeviceCounters = {
    sent: 0,
    errorsReceived: 0,
    commandsAnswered: 0,
    desiredApplied: 0,
    jobsSucceeded: 0,
    jobsFailed: 0,
  };
  const devices = (await fleetCredentials(config)).map(
    ([id, secret], index) =>
      new SimulatedDevice({
        id,
        secret,
        mqttUrl: config.MQTT_URL,
        protocolVersion: protocolFor(config, index),
        batch: config.SIM_BATCH,
        counters,
        jobs: { installMs: config.SIM_JOB_INSTALL_MS, failureRate: config.SIM_JOB_FAILURE_RATE },
      }),
  );
  const write = (line: string) => process.stdout.write(`${line}\n`);
  write(
    `simulator: ${devices.length} devices → ${config.MQTT_URL}, ${config.SIM_RATE} msg/s each, batch ${config.SIM_BATCH}`,
  );
  await Promise.all(devices.map((device) => device.start()));

  const intervalMs = 1000 / config.SIM_RATE;
  // Spread the devices over the interval so the fleet does not publish in lock-step.
  const timers = devices.map((device, index) => {
    let timer: NodeJS.Timeout | undefined;
    const start = setTimeout(
      () => {
        timer = setInterval(() => void device.publishTelemetry().catch(() => undefined), intervalMs);
      },
      (index * intervalMs) / devices.length,
    );
    return () => {
      clearTimeout(start);
      if (timer) clearInterval(timer);
    };
  });

  let lastSent = 0;
  let lastAt = Date.now();
  const health = watchHealth(config.SIM_WATCH, config.SIM_PROGRESS_EVERY * 1000);
  const stored = config.SIM_STORED_METRICS_URL
    ? watchStoredRate(config.SIM_STORED_METRICS_URL, config.SIM_PROGRESS_EVERY * 1000)
    : undefined;
  const progress = setInterval(() => {
    const now = Date.now();
    const rate = ((counters.sent - lastSent) * 1000) / (now - lastAt);
    lastSent = counters.sent;
    lastAt = now;
    const online = devices.filter((device) => device.connected).length;
    const down = health.down();
    const storedNow = stored?.sample();
    write(
      [
        `simulator: ${online}/${devices.length} online`,
        `sent ${counters.sent} (${rate.toFixed(1)}/s)`,
        ...(storedNow ? [`stored ${storedNow.total} samples (${storedNow.perSecond.toFixed(1)}/s)`] : []),
        `commands answered ${counters.commandsAnswered}`,
        `desired applied ${counters.desiredApplied}`,
        `jobs ${counters.jobsSucceeded} ok/${counters.jobsFailed} failed`,
        `errors received ${counters.errorsReceived}`,
        ...(down.length > 0 ? [`DOWN: ${down.join(', ')}`] : []),
      ].join(' · '),
    );
  }, config.SIM_PROGRESS_EVERY * 1000);

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    for (const cancel of timers) cancel();
    clearInterval(progress);
    health.stop();
    stored?.stop();
    await Promise.all(devices.map((device) => device.stop()));
    write(`simulator: stopped after ${counters.sent} messages`);
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
  if (config.SIM_DURATION > 0) setTimeout(() => void stop(), config.SIM_DURATION * 1000);
}

/** `node dist/simulator.js example-rollout`: the example OTA rollout against the jobs API (SIM_JOBS_URL). */
async function rollout(): Promise<void> {
  const jobsUrl = process.env.SIM_JOBS_URL;
  const apiKey = process.env.SIM_API_KEY;
  if (!jobsUrl || !apiKey) throw new Error('set SIM_JOBS_URL and SIM_API_KEY');
  await exampleRollout({ jobsUrl, apiKey, tag: 'simulated', write: (line) => process.stdout.write(`${line}\n`) });
}

exitOnFatalErrors('simulator');
await (process.argv[2] === 'example-rollout' ? rollout() : main());
