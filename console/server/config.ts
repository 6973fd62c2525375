import { z } from 'zod';
import { baseConfigSchema, type Env, loadConfig } from '../../shared/config.js';

/** The capabilities the console may reach, and the path segment each has under `/api/`. */
export const CAPABILITIES = [
  'device-registry',
  'telemetry-ingest',
  'command-dispatch',
  'report-generation',
  'dead-letters',
  'jobs',
  'api-keys',
] as const;
export type Capability = (typeof CAPABILITIES)[number];

/**
 * `name=url,…`: where each capability's app API answers (its public Knative Service; in a cluster the
 * cluster-local address, `http://device-registry.kiot.svc.cluster.local`). A capability not listed answers 404.
 */
const upstreamsSchema = z
  .string()
  .min(1)
  .transform((text, ctx) => {
    const upstreams = new Map<Capability, URL>();
    for (const pair of text
      .split(',')
      .map((part) => part.trim())
      .filter(Boolean)) {
      const [name, url] = [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)];
      if (!(CAPABILITIES as readonly string[]).includes(name)) {
        ctx.addIssue({ code: 'custom', message: `${name} is not a capability (${CAPABILITIES.join(', ')})` });
        continue;
      }
      try {
        const parsed = new URL(url);
        if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error('not http(s)');
        upstreams.set(name as Capability, parsed);
      } catch {
        ctx.addIssue({ code: 'custom', message: `${name}: ${url} is not an http(s) URL` });
      }
    }
    return upstreams;
  })
  .describe('name=url pairs, comma-separated, e.g. device-registry=http://127.0.0.1:8101');

export const consoleConfigSchema = baseConfigSchema.extend({
  CONSOLE_UPSTREAMS: upstreamsSchema,
  /** The built page (scripts/build-console.mjs): index.html and assets/. Default: `console/` beside the bundle. */
  CONSOLE_ASSETS_DIR: z.string().min(1).optional(),
  /** How long an upstream may take to answer with its headers (a live stream's body may then last). */
  CONSOLE_UPSTREAM_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(30_000),
  /** The largest request body passed on (the APIs' own limit is 1 MiB). */
  CONSOLE_MAX_BODY_BYTES: z.coerce.number().int().min(1_024).max(16_777_216).default(1_048_576),
});
export type ConsoleConfig = z.infer<typeof consoleConfigSchema>;

export const loadConsoleConfig = (env: Env = process.env): ConsoleConfig => loadConfig(consoleConfigSchema, env);
