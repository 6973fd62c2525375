import { createHash } from 'node:crypto';
import { z } from 'zod';
import { PUBLIC_SCOPE } from './api-keys.js';
import { InvalidInputError, problemSchema, zodIssues } from './errors.js';
import type { HandlerContext, HttpRequest, HttpResult, Route } from './function-app.js';

/**
 * An app route together with its contract: the zod schemas that validate it are the ones the OpenAPI 3.1
 * document is generated from (`z.toJSONSchema`, JSON Schema 2020-12, which OpenAPI 3.1 uses as is), so
 * the document cannot drift from the code.
 */
export interface ApiOperation extends Route {
  summary: string;
  /** Path parameters (`:name` in `path`), each with its schema: checked before the handler runs (400). */
  params?: Record<string, z.ZodType>;
  /** The JSON request body's schema (input side). Required unless `bodyOptional`: a missing body is a 400. */
  body?: z.ZodType;
  /** An absent body means "all defaults" (the handler gets `undefined`). */
  bodyOptional?: boolean;
  /** Query parameters: an object schema, one parameter per key. */
  query?: z.ZodObject;
  /** Request headers the operation reads (name → description, and the schema of its value). */
  headers?: Record<string, { description: string; required?: boolean; schema?: z.ZodType }>;
  /**
   * Rules the server enforces that JSON Schema cannot state (the clock, one field against another, a store's
   * state), each answered with 400 or 422: listed in the document (`x-kiot-rules`) beside the schemas.
   */
  rules?: string[];
  responses: Record<
    number,
    { description: string; schema?: z.ZodType; headers?: Record<string, string>; contentTypes?: string[] }
  >;
}

/** An error answer of an operation: every 4xx/5xx carries the problem body (shared/errors.ts). */
export const problem = (description: string) => ({ description, schema: problemSchema });

/** The answers every app route may give before its handler runs (the rest are added by `openApiDocument`). */
export const appProblems = {
  400: problem('invalid input'),
  401: problem('no valid API key'),
  403: problem('the key lacks the scope'),
};

/**
 * Declares an operation. Its path parameters and the presence of a required body are checked here, after the
 * API key and before the handler, so the server refuses exactly what the document says it refuses.
 */
export function operation(op: ApiOperation): ApiOperation {
  const names = pathParameters(op.path);
  const missing = names.filter((name) => !op.params?.[name]);
  if (missing.length > 0)
    throw new Error(`${op.method} ${op.path}: no schema for path parameter ${missing.join(', ')}`);
  const handle = op.handle;
  return {
    ...op,
    async handle(request: HttpRequest, ctx: HandlerContext): Promise<HttpResult> {
      for (const name of names) {
        const parsed = op.params![name]!.safeParse(request.params[name]);
        if (!parsed.success) {
          throw new InvalidInputError(
            `the path parameter ${name} is invalid`,
            zodIssues(parsed.error).map((issue) => ({ ...issue, path: name })),
            'invalid_path_parameter',
          );
        }
      }
      if (op.body && !op.bodyOptional && !op.streamBody && request.body === undefined) {
        throw new InvalidInputError('this request needs a JSON body', undefined, 'body_required');
      }
      return handle(request, ctx);
    },
  };
}

function pathParameters(path: string): string[] {
  return [...path.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => m[1]!);
}

type JsonSchema = Record<string, unknown>;

/** JSON Schema 2020-12 of a zod schema; `$defs` (recursive types such as `z.json()`) hoisted by `hoist`. */
const jsonSchema = (schema: z.ZodType, io: 'input' | 'output') =>
  // `unrepresentable: 'any'`: a transform or custom refinement has no JSON Schema form; it documents as {}
  // rather than failing the whole document.
  z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any' }) as JsonSchema;

const JSON_VALUE = JSON.stringify(jsonSchema(z.json(), 'input').$defs ?? {});

/**
 * The component schemas of one document. zod writes a recursive schema's parts under `$defs` with references
 * `#/$defs/<name>`, which inside an OpenAPI document would point at the document's root (dangling): each is
 * moved to `components/schemas` under a name of its content, and the references follow it.
 */
class Components {
  readonly schemas: Record<string, JsonSchema> = {};

  hoist(generated: JsonSchema): JsonSchema {
    const { $schema: _dialect, $defs, ...schema } = generated;
    const defs = ($defs ?? {}) as Record<string, JsonSchema>;
    const renamed = new Map<string, string>();
    const isJsonValue = JSON.stringify(defs) === JSON_VALUE;
    for (const [name, def] of Object.entries(defs)) {
      const content = JSON.stringify(def);
      let target = isJsonValue
        ? 'JsonValue'
        : /^__schema\d+$/.test(name)
          ? `Schema${createHash('sha256').update(content).digest('hex').slice(0, 10)}`
          : name;
      while (this.schemas[target] && JSON.stringify(this.schemas[target]) !== content) target = `${target}_`;
      renamed.set(name, target);
    }
    const rewrite = (value: unknown): unknown => {
      if (Array.isArray(value)) return value.map(rewrite);
      if (value === null || typeof value !== 'object') return value;
      return Object.fromEntries(
        Object.entries(value).map(([key, inner]) => {
          if (key === '$ref' && typeof inner === 'string' && inner.startsWith('#/$defs/')) {
            return [key, `#/components/schemas/${renamed.get(inner.slice('#/$defs/'.length)) ?? 'missing'}`];
          }
          return [key, rewrite(inner)];
        }),
      );
    };
    for (const [name, def] of Object.entries(defs)) this.schemas[renamed.get(name)!] = rewrite(def) as JsonSchema;
    return rewrite(schema) as JsonSchema;
  }

  of(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
    return this.hoist(jsonSchema(schema, io));
  }
}

/** Every list with a `cursor` query parameter: its value is opaque, only what a previous page returned. */
export const CURSOR_RULE = 'a cursor is one a previous page of this list returned (400 invalid_cursor)';

function rulesOf(op: ApiOperation): string[] {
  return [...(op.rules ?? []), ...(op.query?.shape.cursor && !op.rules?.includes(CURSOR_RULE) ? [CURSOR_RULE] : [])];
}

/** The answers an operation may give besides its own, from what it takes (input, key, body). */
function standardResponses(op: ApiOperation): ApiOperation['responses'] {
  const standard: ApiOperation['responses'] = {};
  const takesInput = Boolean(op.params || op.query || op.body || op.headers);
  if (takesInput) standard[400] = problem('invalid input (the problem lists every issue)');
  if (op.security === 'device') {
    standard[401] = { ...problem('no valid device credential'), headers: { 'www-authenticate': 'Basic' } };
  } else if (op.scope !== PUBLIC_SCOPE) {
    standard[401] = { ...problem('no valid API key'), headers: { 'www-authenticate': 'Bearer' } };
    standard[403] = problem('the key lacks the scope');
  }
  if (op.body && !op.streamBody) {
    standard[413] = problem('the body is larger than the limit (1 MiB)');
    standard[415] = problem('the body is not application/json, or is sent with a content encoding');
  }
  // Any request: Node's parser refuses a request line and headers over 16 KiB (shared/serve.ts).
  standard[431] = problem('the request line and headers are larger than the server reads (16 KiB)');
  if (op.scope !== PUBLIC_SCOPE || op.security) standard[503] = problem('a store is unavailable; retry');
  return standard;
}

/** The OpenAPI 3.1.0 document of a function's operations. */
export function openApiDocument(
  info: { title: string; version: string; description?: string },
  operations: readonly ApiOperation[],
) {
  const components = new Components();
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of operations) {
    const path = op.path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    const parameters: unknown[] = [];
    for (const name of pathParameters(op.path)) {
      const schema = op.params?.[name];
      if (!schema) throw new Error(`${op.method} ${op.path}: no schema for path parameter ${name}`);
      parameters.push({ name, in: 'path', required: true, schema: components.of(schema, 'input') });
    }
    for (const [name, schema] of Object.entries(op.query?.shape ?? {})) {
      const field = schema as z.ZodType;
      parameters.push({
        name,
        in: 'query',
        required: !field.safeParse(undefined).success,
        schema: components.of(field, 'input'),
      });
    }
    for (const [name, header] of Object.entries(op.headers ?? {})) {
      parameters.push({
        name,
        in: 'header',
        required: header.required ?? false,
        description: header.description,
        schema: header.schema ? components.of(header.schema, 'input') : { type: 'string' },
      });
    }
    const responses: Record<string, unknown> = {};
    for (const [status, response] of Object.entries({ ...standardResponses(op), ...op.responses })) {
      const media = response.contentTypes ?? (response.schema ? ['application/json'] : []);
      responses[status] = {
        description: response.description,
        ...(media.length > 0
          ? {
              content: Object.fromEntries(
                media.map((type) => [
                  type,
                  type === 'application/json' && response.schema
                    ? { schema: components.of(response.schema, 'output') }
                    : {},
                ]),
              ),
            }
          : {}),
        ...(response.headers
          ? {
              headers: Object.fromEntries(
                Object.entries(response.headers).map(([name, description]) => [
                  name,
                  { description, schema: { type: 'string' } },
                ]),
              ),
            }
          : {}),
      };
    }
    paths[path] ??= {};
    const camelPath = path
      .replace(/[{}]/g, '')
      .replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ?? '').toUpperCase());
    paths[path][op.method.toLowerCase()] = {
      summary: op.summary,
      operationId: `${op.method.toLowerCase()}${camelPath}`,
      ...(rulesOf(op).length > 0
        ? { description: `Also enforced: ${rulesOf(op).join('; ')}.`, 'x-kiot-rules': rulesOf(op) }
        : {}),
      ...(op.security === 'device'
        ? { security: [{ deviceBasic: [] }] }
        : op.scope === PUBLIC_SCOPE
          ? { security: [] }
          : { 'x-required-scope': op.scope ?? '(any valid key)' }),
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(op.body
        ? {
            requestBody: {
              required: !op.bodyOptional,
              content: { 'application/json': { schema: components.of(op.body, 'input') } },
            },
          }
        : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info,
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    components: {
      schemas: components.schemas,
      securitySchemes: {
        apiKey: { type: 'http', scheme: 'bearer', description: 'kiot_<keyId>_<secret>' },
        ...(operations.some((op) => op.security === 'device')
          ? { deviceBasic: { type: 'http', scheme: 'basic', description: 'the device id and its own secret' } }
          : {}),
      },
    },
    security: [{ apiKey: [] }],
    paths,
  };
}

/**
 * `GET /openapi.json`, public. The document is generated on its first request, not as the function starts:
 * converting every operation's schemas to JSON Schema cost 20–110 ms of a cold start (docs/performance.md).
 */
export function openApiRoute(
  info: Parameters<typeof openApiDocument>[0],
  operations: Parameters<typeof openApiDocument>[1],
): Route {
  let document: ReturnType<typeof openApiDocument> | undefined;
  return {
    method: 'GET',
    path: '/openapi.json',
    scope: PUBLIC_SCOPE,
    handle: async (_request: HttpRequest, _ctx: HandlerContext): Promise<HttpResult> => {
      document ??= openApiDocument(info, operations);
      return { status: 200, body: document };
    },
  };
}
