import { z } from 'zod';
import { PUBLIC_SCOPE } from './api-keys.js';
import { problemSchema } from './errors.js';
import type { HandlerContext, HttpRequest, HttpResult, Route } from './function-app.js';

/**
 * An app route together with its contract: the zod schemas that validate it are the ones the OpenAPI 3.1
 * document is generated from (`z.toJSONSchema`, JSON Schema 2020-12, which OpenAPI 3.1 uses as is), so
 * the document cannot drift from the code.
 */
export interface ApiOperation extends Route {
  summary: string;
  /** The JSON request body's schema (input side). */
  body?: z.ZodType;
  /** Query parameters: an object schema, one parameter per key. */
  query?: z.ZodObject;
  /** Request headers the operation reads (name → description). */
  headers?: Record<string, { description: string; required?: boolean }>;
  responses: Record<number, { description: string; schema?: z.ZodType; headers?: Record<string, string> }>;
}

/** An error answer of an operation: every 4xx/5xx carries the problem body (shared/errors.ts). */
export const problem = (description: string) => ({ description, schema: problemSchema });

/** The answers every app route may give before its handler runs. */
export const appProblems = {
  400: problem('invalid input'),
  401: problem('no valid API key'),
  403: problem('the key lacks the scope'),
};

/** Declares an operation (its handler types stay those of `Route`). */
export function operation(op: ApiOperation): ApiOperation {
  return op;
}

const jsonSchema = (schema: z.ZodType, io: 'input' | 'output') =>
  // `unrepresentable: 'any'`: a transform or custom refinement has no JSON Schema form; it documents as {}
  // rather than failing the whole document.
  z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any' }) as Record<string, unknown>;

function withoutDialect(schema: Record<string, unknown>): Record<string, unknown> {
  const { $schema: _dialect, ...rest } = schema;
  return rest;
}

/** The OpenAPI 3.1.0 document of a function's operations. */
export function openApiDocument(
  info: { title: string; version: string; description?: string },
  operations: readonly ApiOperation[],
) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of operations) {
    const path = op.path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    const parameters: unknown[] = [];
    for (const name of [...op.path.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => m[1]!)) {
      parameters.push({ name, in: 'path', required: true, schema: { type: 'string' } });
    }
    for (const [name, schema] of Object.entries(op.query?.shape ?? {})) {
      const field = schema as z.ZodType;
      parameters.push({
        name,
        in: 'query',
        required: !field.safeParse(undefined).success,
        schema: withoutDialect(jsonSchema(field, 'input')),
      });
    }
    for (const [name, header] of Object.entries(op.headers ?? {})) {
      parameters.push({
        name,
        in: 'header',
        required: header.required ?? false,
        description: header.description,
        schema: { type: 'string' },
      });
    }
    const responses: Record<string, unknown> = {};
    for (const [status, response] of Object.entries(op.responses)) {
      responses[status] = {
        description: response.description,
        ...(response.schema
          ? { content: { 'application/json': { schema: withoutDialect(jsonSchema(response.schema, 'output')) } } }
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
    paths[path][op.method.toLowerCase()] = {
      summary: op.summary,
      ...(op.scope === PUBLIC_SCOPE ? { security: [] } : { 'x-required-scope': op.scope ?? '(any valid key)' }),
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(op.body
        ? {
            requestBody: {
              required: true,
              content: { 'application/json': { schema: withoutDialect(jsonSchema(op.body, 'input')) } },
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
      securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'kiot_<keyId>_<secret>' } },
    },
    security: [{ apiKey: [] }],
    paths,
  };
}

/** `GET /openapi.json`, public. */
export function openApiRoute(document: unknown): Route {
  return {
    method: 'GET',
    path: '/openapi.json',
    scope: PUBLIC_SCOPE,
    handle: async (_request: HttpRequest, _ctx: HandlerContext): Promise<HttpResult> => ({
      status: 200,
      body: document,
    }),
  };
}
