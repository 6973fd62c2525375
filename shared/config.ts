import { ConnectionString } from 'mongodb-connection-string-url';
import { z } from 'zod';
import { redisUrlProblem } from './redis-topology.js';

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
  z
    .string()
    .refine(
      (value) => {
        try {
          return protocols.includes(new URL(value).protocol);
        } catch {
          return false;
        }
      },
      `must be a URL with protocol ${protocols.join(' or ')}`,
    )
    .describe(`a URL with protocol ${protocols.join(' or ')}`);

/** Field groups that deployables pick from, so every one spells a connection string the same way. */
export const mongoFields = {
  /** Parsed as the driver parses it (a replica set lists several hosts, which WHATWG URLs refuse). */
  MONGODB_URL: z
    .string()
    .superRefine((value, ctx) => {
      try {
        new ConnectionString(value);
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: (error as Error).message });
      }
    })
    .describe('a MongoDB connection string: mongodb://host[:port][,host…][/db][?options] or mongodb+srv://host'),
  MONGODB_DB: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,63}$/)
    .default('kiot'),
  /**
   * When a write counts as done (shared/mongo.ts `mongoOptions`, docs/deploy.md): `w` — `majority`, a
   * number of members or a custom write concern name —, on-disk journal, and how long to wait for it.
   */
  MONGODB_WRITE_CONCERN: z
    .string()
    .regex(/^(\d+|[A-Za-z][A-Za-z0-9_-]*)$/)
    .default('majority')
    .transform((w) => (/^\d+$/.test(w) ? Number(w) : w))
    .describe('majority, a number of members, or a custom write concern name'),
  MONGODB_JOURNAL: z
    .enum(['true', 'false'])
    .default('true')
    .transform((value) => value === 'true'),
  MONGODB_WRITE_TIMEOUT_MS: z.coerce.number().int().min(0).default(10_000),
  /** Which replica-set member reads go to; `primary` everywhere kiot reads (docs/deploy.md says why). */
  MONGODB_READ_PREFERENCE: z
    .enum(['primary', 'primaryPreferred', 'secondary', 'secondaryPreferred', 'nearest'])
    .default('primary'),
};
/** One node, Sentinel or Cluster, by the URL's scheme (shared/redis-topology.ts, docs/deploy.md). */
export const redisFields = {
  REDIS_URL: z
    .string()
    .superRefine((value, ctx) => {
      const problem = redisUrlProblem(value);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    })
    .describe(
      'redis://host:port, redis-sentinel://host:port,…/master or redis-cluster://host:port,… (rediss-… for TLS)',
    ),
};
export const mqttFields = {
  MQTT_URL: url(['mqtt:', 'mqtts:', 'ws:', 'wss:', 'tcp:', 'ssl:']),
  MQTT_USERNAME: z.string().min(1).optional(),
  MQTT_PASSWORD: z.string().min(1).optional(),
};
export const sinkFields = { K_SINK: url(['http:', 'https:']) };
export const httpUrl = url(['http:', 'https:']);

/** One problem with one variable, in words: what is wrong and what would be right. */
export interface ConfigIssue {
  /** The variable, with the place inside its value when it is structured (`API_KEYS[0].hash`). */
  path: string;
  /** What is wrong, e.g. `is not set`, `is not a number`. */
  problem: string;
  /** What the variable should hold, e.g. `an integer from 1 to 64`. */
  expected: string;
}

export class ConfigError extends Error {
  constructor(readonly issues: ConfigIssue[]) {
    super(`invalid configuration: ${issues.map((issue) => describeConfigIssue(issue)).join('; ')}`);
    this.name = 'ConfigError';
  }
}

/** `DEAD_LETTER_SINK is not set; expected a URL with protocol http: or https:` */
export function describeConfigIssue(issue: ConfigIssue): string {
  return `${issue.path} ${issue.problem}; expected ${issue.expected}`;
}

/**
 * Validates the environment once at start-up. A bad revision then fails its readiness instead of
 * failing every event it receives. Every problem is reported, not only the first.
 */
export function loadConfig<S extends z.ZodType>(schema: S, env: Env = process.env): z.infer<S> {
  // jitless: zod compiles an object schema's fast path (new Function) on its first parse, which pays only for a
  // schema parsed many times; the environment is parsed once, at start (docs/performance.md, "Cold start").
  const parsed = schema.safeParse(env, { reportInput: true, jitless: true });
  if (!parsed.success) throw new ConfigError(parsed.error.issues.map((issue) => configIssueOf(schema, issue)));
  return parsed.data;
}

function configIssueOf(schema: z.ZodType, issue: z.core.$ZodIssue): ConfigIssue {
  const [variable, ...inside] = issue.path;
  const path = [
    String(variable ?? '(environment)'),
    ...inside.map((key) => (typeof key === 'number' ? `[${key}]` : `.${String(key)}`)),
  ].join('');
  const field = schema instanceof z.ZodObject && typeof variable === 'string' ? schema.shape[variable] : undefined;
  // A problem inside a structured (JSON) variable is described by the issue; one with the whole variable by its schema.
  const expected = (inside.length === 0 ? expectationOf(field) : undefined) ?? expectationOfIssue(issue);
  return { path, problem: problemOf(issue), expected };
}

function problemOf(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'invalid_type':
      if (issue.input === undefined) return 'is not set';
      if (issue.expected === 'int') return 'is not a whole number';
      return `is not ${article(issue.expected)}`;
    case 'too_small':
      return issue.origin === 'number' ? 'is below the minimum' : 'is too short';
    case 'too_big':
      return issue.origin === 'number' ? 'is above the maximum' : 'is too long';
    case 'invalid_value':
      return 'is not one of the allowed values';
    case 'invalid_format':
      return issue.format === 'regex'
        ? 'has characters or a length that are not allowed'
        : `is not a valid ${issue.format}`;
    default:
      return 'is not valid';
  }
}

function expectationOfIssue(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'invalid_type':
      return issue.expected === 'int' ? 'a whole number' : article(issue.expected);
    case 'too_small':
      return `at least ${issue.minimum}${issue.origin === 'number' ? '' : ` ${issue.origin === 'string' ? 'characters' : 'items'}`}`;
    case 'too_big':
      return `at most ${issue.maximum}${issue.origin === 'number' ? '' : ` ${issue.origin === 'string' ? 'characters' : 'items'}`}`;
    case 'invalid_value':
      return `one of ${issue.values.join(', ')}`;
    case 'invalid_format':
      return issue.format === 'regex' && issue.pattern ? `text matching ${issue.pattern}` : `a valid ${issue.format}`;
    default:
      // A refinement's message says what it wants ("must be 32 bytes, base64url").
      return issue.message.replace(/^must be /, '');
  }
}

const article = (noun: string) => `${/^[aeiou]/.test(noun) ? 'an' : 'a'} ${noun}`;

interface FieldShape {
  description?: string;
  type?: string;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  pattern?: string;
  minLength?: number;
}

/** What a variable should hold, in words, from its schema (its JSON Schema: range, options, pattern, description). */
function expectationOf(field: z.ZodType | undefined): string | undefined {
  if (!field) return undefined;
  let shape: FieldShape;
  try {
    shape = z.toJSONSchema(field, { io: 'input', unrepresentable: 'any' }) as FieldShape;
  } catch {
    return undefined;
  }
  if (shape.description) return shape.description;
  if (shape.enum) return `one of ${shape.enum.join(', ')}`;
  if (shape.type === 'integer' || shape.type === 'number') {
    const noun = shape.type === 'integer' ? 'a whole number' : 'a number';
    const { minimum: min, maximum: max, exclusiveMinimum: above, exclusiveMaximum: below } = shape;
    if (min !== undefined && max !== undefined) return `${noun} from ${min} to ${max}`;
    const bounds = [
      min !== undefined ? `at least ${min}` : undefined,
      above !== undefined ? `above ${above}` : undefined,
      max !== undefined ? `at most ${max}` : undefined,
      below !== undefined ? `below ${below}` : undefined,
    ].filter(Boolean);
    return bounds.length > 0 ? `${noun} ${bounds.join(' and ')}` : noun;
  }
  if (shape.pattern) return `text matching ${shape.pattern}`;
  return undefined;
}
