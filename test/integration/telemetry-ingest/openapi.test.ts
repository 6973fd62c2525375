import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchOpenApiDocument } from '../../support/openapi.js';
import { type Harness, startHarness } from './harness.js';

// The API document is generated from the same zod schemas that validate the requests.
describe('telemetry-ingest OpenAPI document', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(() => h.close());

  it('is served without a key, and describes every route from its schemas', async () => {
    const doc = await fetchOpenApiDocument(h.base);
    expect(Object.keys(doc.paths).sort()).toEqual([
      '/alert-rules',
      '/alert-rules/{ruleId}',
      '/alerts',
      '/alerts/{alertId}/acknowledge',
      '/devices/{id}/state',
      '/devices/{id}/telemetry',
      '/devices/{id}/telemetry/batch',
      '/devices/{id}/telemetry/stream',
      '/presence',
      '/telemetry-summary',
    ]);
    expect(Object.keys(doc.paths['/alert-rules/{ruleId}']!).sort()).toEqual(['delete', 'get', 'put']);
    // Devices post with their own credential (HTTP Basic), not an API key.
    const ingest = doc.paths['/devices/{id}/telemetry']!.post;
    expect(ingest.security).toEqual([{ deviceBasic: [] }]);
    expect(
      (doc as unknown as { components: { securitySchemes: Record<string, unknown> } }).components.securitySchemes
        .deviceBasic,
    ).toEqual(expect.objectContaining({ type: 'http', scheme: 'basic' }));
    const batch = doc.paths['/devices/{id}/telemetry/batch']!.post;
    expect(batch.security).toEqual([{ deviceBasic: [] }]);
    expect(batch.requestBody.content['application/json'].schema).toMatchObject({ type: 'array', minItems: 1 });
    const items = batch.responses['200'].content['application/json'].schema.properties.items.items;
    expect(items.properties.outcome.enum).toEqual(['stored', 'duplicate', 'refused']);
    const rule = doc.paths['/alert-rules']!.post.requestBody.content['application/json'].schema;
    expect(rule.additionalProperties).toBe(false);
    expect(rule.properties.comparison.enum).toEqual(['>', '>=', '<', '<=']);
    const state = doc.paths['/devices/{id}/state']!.get.responses['200'].content['application/json'].schema;
    expect(state.properties.presence.properties.status.enum).toEqual(['online', 'offline', 'unknown']);
    expect(doc.paths['/devices/{id}/telemetry']!.get['x-required-scope']).toBe('telemetry:read');
  });
});
