import { describe, expect, it } from 'vitest';
import { fetchOpenApiDocument } from '../../support/openapi.js';
import { harnessFixture } from './harness.js';

// The API document is generated from the same zod schemas that validate the requests.
describe('command-dispatch OpenAPI document', () => {
  const f = harnessFixture();

  it('is served without a key, and describes every route from its schemas', async () => {
    const doc = await fetchOpenApiDocument(f.h.instances[0]!.base);
    expect(Object.keys(doc.paths).sort()).toEqual([
      '/command-summary',
      '/commands',
      '/commands/{commandId}',
      '/devices/{id}/commands',
      '/devices/{id}/state/desired',
    ]);
    const create = doc.paths['/devices/{id}/commands']!.post;
    expect(create['x-required-scope']).toBe('commands:write');
    const body = create.requestBody.content['application/json'].schema;
    expect(body.additionalProperties).toBe(false);
    expect(body.required).toEqual(['name']);
    expect(body.properties.wait.anyOf).toEqual(expect.arrayContaining([expect.objectContaining({ type: 'boolean' })]));
    expect(create.parameters).toEqual(
      expect.arrayContaining([expect.objectContaining({ name: 'idempotency-key', in: 'header' })]),
    );
    expect(Object.keys(create.responses).sort()).toEqual([
      '200',
      '202',
      '400',
      '401',
      '403',
      '404',
      '413',
      '415',
      '422',
      '429',
      '431',
      '503',
      '504',
    ]);
    expect(create.responses['202'].content['application/json'].schema.properties.status.enum).toContain('SUCCEEDED');
    expect(Object.keys(doc.paths['/devices/{id}/state/desired']!).sort()).toEqual(['get', 'patch']);
  });
});
