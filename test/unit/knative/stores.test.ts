import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { loadConfig } from '../../../shared/config.js';
import { mongoOptions } from '../../../shared/mongo.js';
import { parseRedisUrl } from '../../../shared/redis-topology.js';
import { kustomize } from './lib/kustomize.js';
import { type K8sObject, ROOT } from './lib/manifests.js';
import { configSchemaOf } from './lib/schemas.js';

// What the manifests say about the stores (docs/deploy.md, "Highly available stores"): every workload that
// talks to MongoDB takes the write concern and read preference from the ConfigMap, production pins them to
// majority + journal and primary, and the connection strings (one node, Sentinel, Cluster, replica set) are
// Secret keys.
const DURABILITY = ['MONGODB_WRITE_CONCERN', 'MONGODB_JOURNAL', 'MONGODB_WRITE_TIMEOUT_MS', 'MONGODB_READ_PREFERENCE'];

interface EnvVar {
  name: string;
  valueFrom?: { configMapKeyRef?: { key: string }; secretKeyRef?: { name: string; key: string } };
}

function workloads(objects: K8sObject[]) {
  return objects
    .filter((doc) => doc.kind === 'Service' && doc.apiVersion.startsWith('serving.knative.dev/'))
    .map((doc) => ({
      name: doc.metadata.name,
      bundle: /^dist\/([a-z-]+)\.js$/.exec(doc.spec.template.spec.containers[0].command.at(-1))![1]!,
      env: doc.spec.template.spec.containers[0].env as EnvVar[],
    }));
}

describe.each(['knative', 'knative/overlays/prod'])('stores in %s', (dir) => {
  const objects = kustomize(dir);
  const configMap = (objects.find((doc) => doc.kind === 'ConfigMap' && doc.metadata.name === 'kiot-config') as
    | (K8sObject & { data: Record<string, string> })
    | undefined)!.data;

  it('acknowledges a MongoDB write on the journal of a majority, and reads from the primary', () => {
    expect(configMap).toMatchObject({
      MONGODB_WRITE_CONCERN: 'majority',
      MONGODB_JOURNAL: 'true',
      MONGODB_READ_PREFERENCE: 'primary',
    });
    expect(Number(configMap.MONGODB_WRITE_TIMEOUT_MS)).toBeGreaterThan(0);
  });

  it('gives every function that uses MongoDB those settings, and the connection strings from the Secret', async () => {
    const users = workloads(objects).filter((w) => w.env.some((e) => e.name === 'MONGODB_URL'));
    // Both Knative Services of a split function (the app one and `<name>-events`) run its bundle.
    expect([...new Set(users.map((w) => w.bundle))].sort()).toEqual(
      [
        'api-keys',
        'command-dispatch',
        'dead-letters',
        'device-registry',
        'jobs',
        'report-generation',
        'telemetry-ingest',
      ].sort(),
    );
    for (const workload of users) {
      const env = new Map(workload.env.map((e) => [e.name, e]));
      for (const name of DURABILITY) expect(env.get(name)?.valueFrom?.configMapKeyRef?.key, workload.name).toBe(name);
      for (const name of ['MONGODB_URL', 'REDIS_URL'].filter((n) => env.has(n)))
        expect(env.get(name)?.valueFrom?.secretKeyRef, workload.name).toEqual({ name: 'kiot-secrets', key: name });
      // What the function makes of them: the ConfigMap's values through its own config schema.
      const values = Object.fromEntries(DURABILITY.map((name) => [name, configMap[name]]));
      const { shape } = (await configSchemaOf(workload.bundle))!;
      const config = z.object(Object.fromEntries(DURABILITY.map((name) => [name, shape[name]!]))).parse(values);
      expect(mongoOptions({ ...config, MONGODB_URL: '', MONGODB_DB: '' } as never)).toEqual({
        writeConcern: { w: 'majority', journal: true, wtimeoutMS: Number(configMap.MONGODB_WRITE_TIMEOUT_MS) },
        readPreference: 'primary',
      });
    }
  });
});

describe('the Secret template', () => {
  const example = readFileSync(join(ROOT, 'knative/config/secret.example.env'), 'utf8');

  it('shows every REDIS_URL form the functions accept, and a MongoDB replica-set URL', async () => {
    const comment = (key: string) => new RegExp(`^# (.*)\\n${key}=`, 'm').exec(example)?.[1] ?? '';
    const redisForms = comment('REDIS_URL').match(/rediss?(-sentinel|-cluster)?:\/\/\S+/g) ?? [];
    expect(redisForms.map((url) => parseRedisUrl(url).kind).sort()).toEqual(['cluster', 'sentinel', 'single']);
    expect(comment('MONGODB_URL')).toMatch(/mongodb:\/\/\S+,\S+\?replicaSet=/);
    const { shape } = (await configSchemaOf('telemetry-ingest'))!;
    const replicaSet = /mongodb:\/\/\S+replicaSet=\S+/.exec(comment('MONGODB_URL'))![0];
    expect(loadConfig(z.object({ MONGODB_URL: shape.MONGODB_URL! }), { MONGODB_URL: replicaSet }).MONGODB_URL).toBe(
      replicaSet,
    );
  });
});
