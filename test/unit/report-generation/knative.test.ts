import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments, stringify } from 'yaml';
import { pingDataSchema } from '../../../functions/report-generation/schema.js';
import { admit } from '../knative/lib/admission.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const DIR = join(ROOT, 'knative', 'report-generation');

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  spec: any;
  resources?: string[];
};
const parse = (file: string) => parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJS() as Doc);

describe('knative/report-generation manifests', () => {
  const files = readdirSync(DIR).filter((f) => f.endsWith('.yaml'));
  const kustomization = parse(join(DIR, 'kustomization.yaml'))[0]!;
  const docs = files.filter((f) => f !== 'kustomization.yaml').flatMap((f) => parse(join(DIR, f)));
  const pings = docs.filter((d) => d.kind === 'PingSource');
  const triggers = docs.filter((d) => d.kind === 'Trigger');

  it('are all listed in the kustomization and admitted by Knative (its own admission code)', () => {
    expect([...kustomization.resources!].sort()).toEqual(files.filter((f) => f !== 'kustomization.yaml').sort());
    for (const doc of docs) expect(doc.metadata.namespace).toBe('kiot');
    // The check is live: a retry count written as a string is refused.
    const broken = structuredClone(triggers[0]!);
    broken.spec.delivery.retry = '3';
    const results = admit([...docs, broken].map((doc) => stringify(doc)).join('---\n'));
    expect(results.slice(0, docs.length).filter((r) => !r.allowed || r.checked !== 'knative')).toEqual([]);
    expect(results[docs.length]!.message).toMatch(/cannot unmarshal string into Go struct field .*retry/);
  });

  it('have one PingSource per task, each sending JSON the function accepts to the tick gate (on to the Broker)', () => {
    expect(pings.map((p) => p.spec.ceOverrides.extensions.kiottask).sort()).toEqual(['reports', 'rollups']);
    for (const ping of pings) {
      expect(ping.apiVersion).toBe('sources.knative.dev/v1');
      expect(ping.spec.contentType).toBe('application/json');
      expect(typeof ping.spec.data).toBe('string');
      const data = JSON.parse(ping.spec.data) as { task: string };
      expect(pingDataSchema.parse(data)?.task).toBe(ping.spec.ceOverrides.extensions.kiottask);
      // The tick gate passes the tick on to the Broker when its task has pending work (data.pending).
      expect(ping.spec.sink.ref).toEqual({ apiVersion: 'v1', kind: 'Service', name: 'tick-gate' });
      // Extension names: lower-case letters and digits only (CloudEvents 1.0 §3.1.1).
      for (const name of Object.keys(ping.spec.ceOverrides.extensions)) expect(name).toMatch(/^[a-z0-9]{1,20}$/);
      expect(ping.spec.schedule.split(/\s+/)).toHaveLength(5);
    }
  });

  it('route each tick to report-generation by type and kiottask, with retries and a dead-letter sink', () => {
    expect(triggers).toHaveLength(pings.length);
    for (const ping of pings) {
      const task = ping.spec.ceOverrides.extensions.kiottask as string;
      const trigger = triggers.find((t) =>
        (t.spec.filters as Record<string, Record<string, string>>[]).some((f) => f.exact?.kiottask === task),
      )!;
      expect(trigger, task).toBeDefined();
      expect(trigger.spec.broker).toBe('default');
      expect(trigger.spec.filters).toEqual([
        { exact: { type: 'dev.knative.sources.ping' } },
        { exact: { kiottask: task } },
      ]);
      // Its cluster-local receiver (FUNCTION_ROLE=events); the public report-generation serves the app API only.
      expect(trigger.spec.subscriber.ref).toEqual({
        apiVersion: 'serving.knative.dev/v1',
        kind: 'Service',
        name: 'report-generation-events',
      });
      expect(trigger.spec.delivery).toMatchObject({
        retry: expect.any(Number),
        backoffPolicy: 'exponential',
        backoffDelay: expect.stringMatching(/^PT\d+(\.\d+)?S$/),
      });
      expect(trigger.spec.delivery.deadLetterSink.ref).toEqual({
        apiVersion: 'serving.knative.dev/v1',
        kind: 'Service',
        name: 'dead-letters',
      });
    }
  });
});
