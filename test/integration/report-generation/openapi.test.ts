import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchOpenApiDocument } from '../../support/openapi.js';
import { type Harness, startHarness } from './harness.js';

// The API document is generated from the same zod schemas that validate the requests.
describe('report-generation OpenAPI document', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness('openapi');
  });
  afterAll(() => h.close());

  it('is served without a key, and describes every route from its schemas', async () => {
    const doc = await fetchOpenApiDocument(h.base);
    expect(Object.keys(doc.paths).sort()).toEqual([
      '/devices/{id}/series',
      '/jobs/{jobId}/outcome',
      '/report-schedules',
      '/report-schedules/{id}',
      '/reports',
      '/reports/{id}',
      '/rollups/run',
    ]);
    const request = doc.paths['/reports']!.post.requestBody.content['application/json'].schema;
    expect(request.additionalProperties).toBe(false);
    expect(request.required).toEqual(expect.arrayContaining(['scope', 'from', 'to', 'metrics']));
    // The series query, a refined object, still documents one parameter per key.
    const series = doc.paths['/devices/{id}/series']!.get.parameters.map(
      (p: { name: string; in: string }) => `${p.in}:${p.name}`,
    );
    expect(series).toEqual(['path:id', 'query:metric', 'query:from', 'query:to', 'query:points']);
    expect(doc.paths['/reports/{id}']!.get.parameters).toEqual(
      expect.arrayContaining([expect.objectContaining({ name: 'format', in: 'query' })]),
    );
    expect(doc.paths['/report-schedules/{id}']!.delete['x-required-scope']).toBe('reports:write');
  });
});
