import { z } from 'zod';

/** Environment variables as Node gives them; a parameter so tests never mutate `process.env`. */
export type Env = Record<string, string | undefined>;

const logLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

/** What every deployable reads. Each deployable extends this with its own fields. */
export const baseConfigSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65_535).default(8080),
  LOG_LEVEL: logLevel.default('info'),
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
});

const url = (protocols: readonly string[]) =>
  z.string().refine(
    (value) => {
      try {
        return protocols.includes(new URL(value).protocol);
      } catch {
        return false;
      }
    },
    `must be a URL with protocol ${protocols.join(' or ')}`,
  );

/** Field groups that deployables pick from, so every one spells a connection string the same way. */
export const mongoFields = {
  MONGODB_URL: url(['mongodb:', 'mongodb+srv:']),
  MONGODB_DB: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,63}$/)
    .default('kiot'),
};
export const redisFields = { REDIS_URL: url(['redis:', 'rediss:']) };
export const mqttFields = {
  MQTT_URL: url(['mqtt:', 'mqtts:', 'ws:', 'wss:', 'tcp:', 'ssl:']),
  MQTT_USERNAME: z.string().min(1).optional(),
  MQTT_PASSWORD: z.string().min(1).optional(),
};
export const sinkFields = { K_SINK: url(['http:', 'https:']) };
export const httpUrl = url(['http:', 'https:']);

export class ConfigError extends Error {
  constructor(readonly issues: { path: string; message: string }[]) {
    super(`invalid configuration: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`);
    this.name = 'ConfigError';
  }
}

/**
 * Validates the environment once at start-up. A bad revision then fails its readiness instead of
 * failing every event it receives.
 */
export function loadConfig<S extends z.ZodType>(schema: S, env: Env = process.env): z.infer<S> {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => ({ path: issue.path.join('.') || '(root)', message: issue.message })),
    );
  }
  return parsed.data;
}
