import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { z } from 'zod';

/** The device type the simulator declares, so the ingest path validates what the fleet sends. */
export const SIM_DEVICE_TYPE = 'sim-sensor';
const simTelemetrySchema = {
  metrics: {
    temperature: { unit: '°C', min: -40, max: 85 },
    humidity: { unit: '%', min: 0, max: 100 },
    battery: { unit: '%', min: 0, max: 100 },
  },
  allowUnknownMetrics: false,
};

const bulkAnswer = z.object({
  results: z.array(
    z.object({
      status: z.enum(['created', 'conflict', 'invalid']),
      id: z.string().optional(),
      secret: z.string().optional(),
    }),
  ),
});
const rotateAnswer = z.object({ secret: z.string() });

async function call(url: string, apiKey: string, method: string, body?: unknown): Promise<unknown> {
  const response = await fetch(url, {
    method,
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${url} answered ${response.status}: ${text.slice(0, 300)}`);
  return text ? JSON.parse(text) : undefined;
}

/**
 * Registers the simulated fleet with the device registry (as an operator would, with the bulk API) and
 * keeps each device's secret in `file`, so devices log in with their own credentials and the broker
 * enforces them. Devices that exist already (a re-run without the file) get their secret rotated.
 */
export async function registerFleet(options: {
  registryUrl: string;
  apiKey: string;
  ids: string[];
  file: string;
}): Promise<Record<string, string>> {
  const known: Record<string, string> = existsSync(options.file) ? JSON.parse(readFileSync(options.file, 'utf8')) : {};
  const missing = options.ids.filter((id) => !known[id]);
  if (missing.length === 0) return pick(known, options.ids);

  const base = options.registryUrl.replace(/\/$/, '');
  await call(`${base}/device-types/${SIM_DEVICE_TYPE}`, options.apiKey, 'PUT', { telemetrySchema: simTelemetrySchema });
  for (let start = 0; start < missing.length; start += 1_000) {
    const chunk = missing.slice(start, start + 1_000);
    const devices = chunk.map((id) => ({ id, name: `Simulated ${id}`, type: SIM_DEVICE_TYPE, tags: ['simulated'] }));
    const answer = bulkAnswer.parse(await call(`${base}/devices/bulk`, options.apiKey, 'POST', { devices }));
    for (const [index, result] of answer.results.entries()) {
      const id = chunk[index]!;
      if (result.status === 'created' && result.secret) known[id] = result.secret;
      else if (result.status === 'conflict') {
        known[id] = rotateAnswer.parse(await call(`${base}/devices/${id}/credentials`, options.apiKey, 'POST')).secret;
      } else throw new Error(`the registry refused simulated device ${id}`);
    }
  }
  writeFileSync(options.file, JSON.stringify(known, null, 2), { mode: 0o600 });
  return pick(known, options.ids);
}

function pick(all: Record<string, string>, ids: string[]): Record<string, string> {
  return Object.fromEntries(ids.map((id) => [id, all[id]!]));
}
