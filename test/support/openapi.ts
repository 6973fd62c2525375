import { expect } from 'vitest';

export interface OpenApiDocument {
  openapi: string;
  paths: Record<string, Record<string, any>>;
}

/** GETs a function's `/openapi.json` without an API key and checks it is an OpenAPI 3.1 document. */
export async function fetchOpenApiDocument(base: string): Promise<OpenApiDocument> {
  const response = await fetch(`${base}/openapi.json`);
  expect(response.status).toBe(200);
  const doc = (await response.json()) as OpenApiDocument;
  expect(doc.openapi).toBe('3.1.0');
  return doc;
}
