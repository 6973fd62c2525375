import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Parser } from '@asyncapi/parser';
import { describe, expect, it } from 'vitest';
import { asyncApiDocument } from '../../scripts/asyncapi/document.js';
import { ROOT } from './knative/lib/manifests.js';

// The AsyncAPI document of the device topics and CloudEvent types is generated from the zod schemas
// (`npm run asyncapi`): the committed docs/asyncapi.json must be current, and valid by AsyncAPI's own parser.
describe('docs/asyncapi.json', () => {
  const generated = asyncApiDocument();

  it('is current: `npm run asyncapi` would write the same', () => {
    expect(JSON.parse(readFileSync(join(ROOT, 'docs', 'asyncapi.json'), 'utf8'))).toEqual(
      JSON.parse(JSON.stringify(generated)),
    );
  });

  it('is a valid AsyncAPI 3.0 document (@asyncapi/parser: no error diagnostics)', async () => {
    const { document, diagnostics } = await new Parser().parse(JSON.stringify(generated));
    const errors = diagnostics.filter((d) => d.severity === 0).map((d) => `${d.path.join('.')}: ${d.message}`);
    expect(errors).toEqual([]);
    expect(document?.version()).toBe('3.0.0');
  });

  it('covers every device topic and the batch event type', () => {
    const addresses = Object.values(generated.channels).map((c) => (c as { address: string }).address);
    for (const topic of [
      'devices/{deviceId}/telemetry',
      'devices/{deviceId}/state/reported',
      'devices/{deviceId}/state/desired',
      'devices/{deviceId}/commands/{commandId}',
      'devices/{deviceId}/commands/{commandId}/ack',
      'devices/{deviceId}/status',
      'devices/{deviceId}/errors',
      'devices/{deviceId}/jobs/{jobId}/update',
      'provisioning/{requestId}/request',
    ])
      expect(addresses).toContain(topic);
    const types = Object.values(generated.components.messages).map((m) => (m as { name: string }).name);
    expect(types).toEqual(expect.arrayContaining(['io.kiot.telemetry.batch', 'io.kiot.telemetry.received']));
  });
});
