// Benchmark of fleet jobs end to end: app POST /jobs → jobs resolves 10,000 targets → notify-next through router
// (or straight from jobs to Mosquitto) → devices → update SUCCEEDED → bridge → router → jobs → update/accepted back.
// `value` = executions completed per second from job creation to the last SUCCEEDED; `limit` = the sustained
// one-by-one command rate through the app API in the same run (an operator looping over devices with
// synchronous commands on command-dispatch). Then a job with maximumPerMinute: the measured release rate
// against the policy. Loopback only, bounded; the last line is one JSON object.
//   Env: MQTT_URL, REDIS_URL, MONGODB_URL (test profile ports by default), BENCH_DEVICES (10000),
//   BENCH_COMMANDS (300), BENCH_RATE_PER_MINUTE (1200), BENCH_RATE_SECONDS (30), BENCH_FLEET_CONNECTIONS (8),
//   BENCH_JOBS_VIA (mqtt: jobs publishes to devices over its own connection, JOBS_MQTT_URL; events: through the Broker).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { MongoClient } from 'mongodb';
import mqtt, { type MqttClient } from 'mqtt';
import { Agent, request } from 'undici';
import { mintApiKey } from '../../shared/api-keys.js';
import { freePort } from '../../test/support/ports.js';
import { cpuMeter, describeCpu, pidOfServer } from './support/cpu.js';

const env = process.env;
const MQTT_URL = env.MQTT_URL ?? 'mqtt://127.0.0.1:21883';
const REDIS_URL = env.REDIS_URL ?? 'redis://127.0.0.1:26379';
const MONGODB_URL = env.MONGODB_URL ?? 'mongodb://127.0.0.1:27027';
const DEVICES = Number(env.BENCH_DEVICES ?? 10_000);
const COMMANDS = Number(env.BENCH_COMMANDS ?? 300);
const RATE = Number(env.BENCH_RATE_PER_MINUTE ?? 1_200);
const RATE_SECONDS = Number(env.BENCH_RATE_SECONDS ?? 30);
const CONNECTIONS = Number(env.BENCH_FLEET_CONNECTIONS ?? 8);
const VIA_EVENTS = env.BENCH_JOBS_VIA === 'events';
const run = `bj${process.pid}${Date.now().toString(36)}`;
const log = (line: string) => process.stderr.write(`${line}\n`);

const children: ChildProcess[] = [];
const childPids: Record<string, number | undefined> = {};
function spawnService(name: string, vars: Record<string, string>): void {
  const child = spawn(process.execPath, [`dist/${name}.js`], {
    env: { ...env, LOG_LEVEL: 'warn', ...vars },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  child.once('exit', (code) => {
    if (code !== null && code !== 0) log(`${name} exited with ${code}`);
  });
  children.push(child);
  childPids[name] = child.pid;
}

async function waitHealthy(url: string, what: string): Promise<void> {
  const until = Date.now() + 60_000;
  for (;;) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > until) throw new Error(`${what} did not become healthy at ${url}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

interface FleetStats {
  /** Per job: when each device saw notify-next, and how many updates were accepted. */
  notified: Map<string, number[]>;
  accepted: Map<string, number>;
}

/**
 * The simulated fleet: a few MQTT connections share the devices' job topics ($share), and act for whichever
 * device a message names — a fast install: on notify-next, update SUCCEEDED with the version it saw.
 */
async function startFleet(stats: FleetStats): Promise<MqttClient[]> {
  const clients: MqttClient[] = [];
  for (let i = 0; i < CONNECTIONS; i += 1) {
    const client = await mqtt.connectAsync(MQTT_URL, { clientId: `${run}-fleet-${i}`, protocolVersion: 5 });
    (client.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
    client.on('message', (topic, payload) => {
      const [, deviceId, , ...rest] = topic.split('/');
      if (rest[0] === 'notify-next') {
        const { execution } = JSON.parse(payload.toString('utf8')) as {
          execution?: { jobId: string; versionNumber: number; status: string };
        };
        if (execution?.status !== 'QUEUED') return;
        const times = stats.notified.get(execution.jobId) ?? [];
        times.push(performance.now());
        stats.notified.set(execution.jobId, times);
        if (execution.jobId.startsWith(`${run}-rate`)) return; // the rate phase only watches releases
        client
          .publishAsync(
            `devices/${deviceId}/jobs/${execution.jobId}/update`,
            JSON.stringify({ status: 'SUCCEEDED', expectedVersion: execution.versionNumber }),
            { qos: 1 },
          )
          .catch((error: unknown) => log(`fleet connection ${i} could not update: ${String(error)}`));
      } else if (rest[1] === 'update' && rest[2] === 'accepted') {
        stats.accepted.set(rest[0]!, (stats.accepted.get(rest[0]!) ?? 0) + 1);
      }
    });
    await client.subscribeAsync(
      [`$share/${run}/devices/+/jobs/notify-next`, `$share/${run}/devices/+/jobs/+/update/accepted`],
      { qos: 1 },
    );
    clients.push(client);
  }
  return clients;
}

/** Devices that answer commands at once (the limit's one-by-one operator loop needs them online). */
async function startCommandDevice(id: string): Promise<MqttClient> {
  const client = await mqtt.connectAsync(MQTT_URL, { clientId: id, protocolVersion: 5 });
  (client.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
  client.on('message', (topic) => {
    if (!topic.endsWith('/ack'))
      client
        .publishAsync(`${topic}/ack`, JSON.stringify({ status: 'succeeded' }), { qos: 1 })
        .catch((error: unknown) => log(`command device ${id} could not ack: ${String(error)}`));
  });
  await client.subscribeAsync(`devices/${id}/commands/+`, { qos: 1 });
  await client.publishAsync(`devices/${id}/status`, 'online', { qos: 1, retain: true });
  return client;
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'kiot-bench-jobs-'));
  const [routerPort, bridgePort, commandsPort, jobsPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const ingress = `http://127.0.0.1:${routerPort}/kiot/default`;
  const jobsUrl = `http://127.0.0.1:${jobsPort}`;
  const commandsUrl = `http://127.0.0.1:${commandsPort}`;
  const dbName = run;
  const { key, entry } = await mintApiKey('bench', ['*']);
  const mongo = await new MongoClient(MONGODB_URL).connect();
  const deviceIds = Array.from({ length: DEVICES }, (_, i) => `${run}-d${String(i).padStart(5, '0')}`);
  const commandDevices = Array.from({ length: 8 }, (_, i) => `${run}-c${i}`);
  const clients: MqttClient[] = [];
  const stats: FleetStats = { notified: new Map(), accepted: new Map() };
  try {
    const now = new Date();
    const docs = [...deviceIds, ...commandDevices].map((id) => ({
      _id: id,
      tags: [id.includes('-c') ? 'cmd' : 'fleet'],
      metadata: {},
      status: 'active',
      credential: { hash: 'x', rotatedAt: now },
      createdAt: now,
      updatedAt: now,
      version: 1,
    }));
    for (let i = 0; i < docs.length; i += 1_000)
      await mongo
        .db(dbName)
        .collection<{ _id: string }>('devices')
        .insertMany(docs.slice(i, i + 1_000));
    spawnService('router', {
      PORT: String(routerPort),
      KNATIVE_DIR: 'knative',
      ROUTER_SERVICES: [
        `command-dispatch=${commandsUrl}`,
        `jobs=${jobsUrl}`,
        `mqtt-bridge=http://127.0.0.1:${bridgePort}`,
        `dead-letters=http://127.0.0.1:${routerPort}/dead-letters`,
      ].join(','),
      ROUTER_DEAD_LETTER_FILE: join(root, 'dead-letters.jsonl'),
      LOG_LEVEL: 'error',
    });
    spawnService('bridge', {
      MQTT_URL,
      K_SINK: ingress,
      DEAD_LETTER_SINK: `http://127.0.0.1:${routerPort}/dead-letters`,
      PORT: String(bridgePort),
      BRIDGE_CLIENT_ID: `${run}-bridge`,
      BRIDGE_SHARE_GROUP: `${run}-group`,
    });
    const common = { MONGODB_URL, MONGODB_DB: dbName, K_SINK: ingress, API_KEYS: JSON.stringify([entry]) };
    spawnService('command-dispatch', { ...common, PORT: String(commandsPort), REDIS_URL, REDIS_KEY_PREFIX: `${run}:` });
    spawnService('jobs', {
      ...common,
      PORT: String(jobsPort),
      JOBS_TICK_INTERVAL_MS: '100',
      JOBS_PUBLIC_URL: jobsUrl,
      // Notifications and answers straight to the broker (JOBS_MQTT_URL); BENCH_JOBS_VIA=events: through the Broker.
      ...(VIA_EVENTS ? {} : { JOBS_MQTT_URL: MQTT_URL }),
    });
    await Promise.all([
      waitHealthy(`http://127.0.0.1:${routerPort}/healthz`, 'router'),
      waitHealthy(`http://127.0.0.1:${bridgePort}/healthz`, 'bridge'),
      waitHealthy(`${commandsUrl}/healthz`, 'command-dispatch'),
      waitHealthy(`${jobsUrl}/healthz`, 'jobs'),
    ]);
    for (const id of commandDevices) clients.push(await startCommandDevice(id));
    clients.push(...(await startFleet(stats)));
    const agent = new Agent({ connections: 4, keepAliveTimeout: 30_000 });
    const api = async (base: string, method: string, path: string, body?: unknown) => {
      const response = await request(`${base}${path}`, {
        method: method as 'GET',
        dispatcher: agent,
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return {
        status: response.statusCode,
        // biome-ignore lint/suspicious/noExplicitAny: the bench reads fields of many answer shapes
        body: (await response.body.json()) as Record<string, any>,
      };
    };
    const pids = {
      bench: process.pid,
      ...childPids,
      // The servers this run talks to, by their ports: other people's Mongo, Redis and Mosquitto on the same host
      // share the process names (the first `java` found was not always ours).
      mongo: pidOfServer(MONGODB_URL),
      redis: pidOfServer(REDIS_URL),
      mosquitto: pidOfServer(MQTT_URL),
    };

    // The limit: an operator's loop, one synchronous command after another, each device answered.
    const command = async (deviceId: string) => {
      const answer = await api(commandsUrl, 'POST', `/devices/${deviceId}/commands`, { name: 'reboot', wait: 10 });
      if (answer.status !== 200 || answer.body.status !== 'SUCCEEDED')
        throw new Error(`command: ${answer.status} ${JSON.stringify(answer.body)}`);
    };
    const ready = Date.now() + 120_000;
    for (const id of commandDevices) {
      for (;;) {
        try {
          await command(id);
          break;
        } catch (error) {
          if (Date.now() > ready) throw error;
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
      }
    }
    let started = performance.now();
    let retried = 0;
    for (let i = 0; i < COMMANDS; i += 1) {
      // An operator's loop retries a command the device did not answer in time (a loaded machine); the time counts.
      for (let attempt = 1; ; attempt += 1) {
        try {
          await command(commandDevices[i % commandDevices.length]!);
          break;
        } catch (error) {
          if (attempt >= 3) throw error;
          retried += 1;
        }
      }
    }
    if (retried > 0) log(`  ${retried} commands retried after a device timeout`);
    const limit = COMMANDS / ((performance.now() - started) / 1_000);
    log(`one-by-one commands through the app API: ${COMMANDS} → ${limit.toFixed(1)}/s`);

    // The job: every fleet device, no rate limit.
    const jobId = `${run}-all`;
    const meter = cpuMeter(pids);
    started = performance.now();
    const created = await api(jobsUrl, 'POST', '/jobs', {
      jobId,
      document: { operation: 'reboot' },
      targets: { tags: ['fleet'] },
    });
    if (created.status !== 201) throw new Error(`job: ${created.status} ${JSON.stringify(created.body)}`);
    // Done when the job counts every execution SUCCEEDED (an answer lost on the way back to a device would not
    // change that; the device would ask again).
    let succeeded = 0;
    let lastLog = Date.now();
    const deadline = Date.now() + 900_000;
    while (succeeded < DEVICES) {
      if (Date.now() > deadline) throw new Error(`timed out with ${succeeded} of ${DEVICES} SUCCEEDED`);
      await new Promise((resolve) => setTimeout(resolve, 500));
      succeeded = Number((await api(jobsUrl, 'GET', `/jobs/${jobId}`)).body.counts?.SUCCEEDED ?? 0);
      if (Date.now() - lastLog > 5_000) {
        lastLog = Date.now();
        log(
          `  ${stats.notified.get(jobId)?.length ?? 0} notified, ${succeeded} SUCCEEDED, ${stats.accepted.get(jobId) ?? 0} answers received`,
        );
      }
    }
    const seconds = (performance.now() - started) / 1_000;
    const value = DEVICES / seconds;
    const cpu = meter.perUnit(DEVICES);
    const job = await api(jobsUrl, 'GET', `/jobs/${jobId}`);
    log(
      `job to ${DEVICES} devices: last SUCCEEDED after ${seconds.toFixed(2)} s → ${value.toFixed(1)} ` +
        `executions/s (job ${job.body.status}, ${job.body.counts?.SUCCEEDED} SUCCEEDED)`,
    );
    log(`  CPU per execution: ${describeCpu(cpu)}`);

    // The rollout rate: releases over RATE_SECONDS against maximumPerMinute.
    const rateJob = `${run}-rate`;
    const rateCreated = await api(jobsUrl, 'POST', '/jobs', {
      jobId: rateJob,
      document: { operation: 'reboot' },
      targets: { tags: ['fleet'] },
      rollout: { maximumPerMinute: RATE },
    });
    if (rateCreated.status !== 201)
      throw new Error(`rate job: ${rateCreated.status} ${JSON.stringify(rateCreated.body)}`);
    await new Promise((resolve) => setTimeout(resolve, RATE_SECONDS * 1_000));
    const times = stats.notified.get(rateJob) ?? [];
    const measured = times.length > 1 ? ((times.length - 1) / ((times.at(-1)! - times[0]!) / 1_000)) * 60 : 0;
    const rateError = Math.abs(measured - RATE) / RATE;
    log(
      `rollout at maximumPerMinute ${RATE}: ${times.length} released in ${RATE_SECONDS} s → ` +
        `${measured.toFixed(1)}/min (${(rateError * 100).toFixed(2)} % off)`,
    );
    await api(jobsUrl, 'POST', `/jobs/${rateJob}/cancel`, {});
    await agent.close();

    const round = (n: number) => Math.round(n * 10) / 10;
    log(
      `executions/s ${value.toFixed(1)} vs one-by-one commands ${limit.toFixed(1)}/s → ratio ${(value / limit).toFixed(2)} (target ≥ 4)`,
    );
    process.stdout.write(
      `${JSON.stringify({
        bench: 'jobs',
        value: round(value),
        unit: 'executions/s',
        limit: round(limit),
        ratio: Math.round((value / limit) * 100) / 100,
        devices: DEVICES,
        seconds_to_last_succeeded: Math.round(seconds * 100) / 100,
        cpu_us_per_execution: cpu,
        rate_per_minute_set: RATE,
        rate_per_minute_measured: round(measured),
        rate_error: Math.round(rateError * 10_000) / 10_000,
        device_messages_via: VIA_EVENTS ? 'events' : 'mqtt',
      })}\n`,
    );
  } finally {
    for (const client of clients) await client.endAsync().catch(() => undefined);
    for (const child of children) child.kill('SIGTERM');
    await Promise.all(
      children.map((child) =>
        child.exitCode === null ? new Promise((resolve) => child.once('exit', resolve)) : undefined,
      ),
    );
    await mongo
      .db(dbName)
      .dropDatabase()
      .catch(() => undefined);
    await mongo.close();
    await rm(root, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  log(error instanceof Error ? (error.stack ?? error.message) : String(error));
  for (const child of children) child.kill('SIGKILL');
  process.exit(1);
});
