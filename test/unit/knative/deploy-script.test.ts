import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { identity, kustomize, kustomizeYaml } from './lib/kustomize.js';
import { type K8sObject, parseDocuments, ROOT } from './lib/manifests.js';

// `scripts/deploy --dry-run` prints every command; the kn flags must say what the manifests say.
const IMAGE = 'registry.example/acme/kiot:t1';
const run = (...args: string[]) => spawnSync('scripts/deploy', args, { cwd: ROOT, encoding: 'utf8' });
const dry = run(
  '--registry',
  'registry.example/acme',
  '--tag',
  't1',
  '--overlay',
  'prod',
  '--secrets-env',
  'secrets.env',
  '--dry-run',
);
const lines = dry.stdout.trim().split('\n');

/** POSIX shell words of one command (single quotes, as scripts/deploy prints them). */
function words(line: string): string[] {
  const out: string[] = [];
  let current = '';
  let quoted = false;
  let started = false;
  for (let i = 0; i < line.length; i += 1) {
    const ch = line[i]!;
    if (quoted) {
      if (ch === "'") quoted = false;
      else current += ch;
    } else if (ch === "'") {
      quoted = true;
      started = true;
    } else if (ch === '\\' && line[i + 1] === "'") {
      current += "'";
      i += 1;
    } else if (ch === ' ') {
      if (started || current) out.push(current);
      current = '';
      started = false;
    } else current += ch;
  }
  if (started || current) out.push(current);
  return out;
}

function flags(argv: string[]): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) continue;
    // `--flag=value` (kn's --arg=--max-old-space-size=…)
    const equals = arg.indexOf('=');
    if (equals > 0) {
      const name = arg.slice(0, equals);
      map.set(name, [...(map.get(name) ?? []), arg.slice(equals + 1)]);
      continue;
    }
    const next = argv[i + 1];
    const value = next !== undefined && !next.startsWith('--') ? next : '';
    if (value !== '') i += 1;
    map.set(arg, [...(map.get(arg) ?? []), value]);
  }
  return map;
}

const knLines = lines.filter((l) => l.startsWith('kn service create '));

describe('scripts/deploy --dry-run', () => {
  it('prints the build, the push, the Secret, one kubectl apply and one kn service create per function', () => {
    expect(dry.status).toBe(0);
    expect(dry.stderr).toBe('');
    // The project's image build and a push with the same engine: no docker daemon needed.
    expect(lines[0]).toBe('npm run --silent image');
    expect(lines[1]).toBe(`npm run --silent image:push -- ${IMAGE}`);
    expect(lines.filter((l) => /\bdocker\b/.test(l))).toEqual([]);
    expect(
      lines.some((l) =>
        /^kubectl create secret generic kiot-secrets --namespace kiot --from-env-file=secrets.env .*\| kubectl apply -f -$/.test(
          l,
        ),
      ),
    ).toBe(true);
    const apply = lines.find((l) => l.startsWith('kubectl kustomize '))!;
    expect(apply).toBe(
      `kubectl kustomize --load-restrictor LoadRestrictionsNone knative/overlays/prod | node ` +
        `scripts/deploy-lib/manifests.mjs --image ${IMAGE} | kubectl apply -f -`,
    );
    // The ConfigMap (read by every revision) is applied before kn creates the Services.
    expect(lines.indexOf(apply)).toBeLessThan(lines.indexOf(knLines[0]!));
    // One kn command per Knative Service the manifests hold: each function, and the `<name>-events` receiver of
    // each one that receives events.
    const [services] = parseDocuments(readFileSync(join(ROOT, 'knative/services/kustomization.yaml'), 'utf8')) as {
      resources: string[];
    }[];
    expect(knLines.map((l) => words(l)[3])).toEqual(services!.resources.map((file) => file.replace(/\.yaml$/, '')));
    expect(knLines.map((l) => words(l)[3])).toEqual(
      expect.arrayContaining(['telemetry-ingest', 'telemetry-ingest-events']),
    );
    expect(knLines.every((l) => words(l).includes('--force'))).toBe(true);
  });

  it('refuses to run without a registry, and prints usage for unknown flags', () => {
    expect(run('--dry-run').status).toBe(2);
    expect(run('--registry', 'r', '--bogus').status).toBe(2);
    expect(run('render', '--check').status).toBe(0);
  });

  it('--only a split function creates both its Services; --overlay prod-oidc applies that overlay', () => {
    const only = run(
      '--skip-build',
      '--tag',
      't1',
      '--overlay',
      'prod-oidc',
      '--only',
      'telemetry-ingest',
      '--dry-run',
    );
    expect(only.status, only.stderr).toBe(0);
    const out = only.stdout.trim().split('\n');
    expect(out.filter((l) => l.startsWith('kn service create ')).map((l) => words(l)[3])).toEqual([
      'telemetry-ingest',
      'telemetry-ingest-events',
    ]);
    expect(
      out.some((l) =>
        l.startsWith('kubectl kustomize --load-restrictor LoadRestrictionsNone knative/overlays/prod-oidc |'),
      ),
    ).toBe(true);
    expect(run('--skip-build', '--only', 'nope', '--dry-run').status).toBe(2);
  });

  it.each(knLines.map((l) => [words(l)[3]!, l] as const))(
    'kn service create %s: every flag matches knative/services/<name>.yaml',
    (name, line) => {
      const argv = words(line);
      const f = flags(argv);
      const one = (flag: string) => f.get(flag)?.[0];
      const [doc] = parseDocuments(readFileSync(join(ROOT, 'knative/services', `${name}.yaml`), 'utf8')) as K8sObject[];
      const template = doc!.spec.template;
      const container = template.spec.containers[0];
      const annotations: Record<string, string> = template.metadata.annotations;
      const A = 'autoscaling.knative.dev/';

      expect(one('--namespace')).toBe(doc!.metadata.namespace);
      expect(one('--filename')).toBe(`knative/services/${name}.yaml`);
      expect(one('--image')).toBe(IMAGE);
      expect([one('--cmd'), ...(f.get('--arg') ?? [])]).toEqual(container.command);
      expect(one('--port')).toBe(`${container.ports[0].name}:${container.ports[0].containerPort}`);
      const literal = (container.env as { name: string; value?: string }[])
        .filter((e) => e.value !== undefined)
        .map((e) => `${e.name}=${e.value}`);
      expect(f.get('--env') ?? []).toEqual(literal);
      const fromRefs = (
        container.env as {
          name: string;
          valueFrom?: { configMapKeyRef?: { name: string; key: string }; secretKeyRef?: { name: string; key: string } };
        }[]
      )
        .filter((e) => e.valueFrom)
        .map((e) =>
          e.valueFrom!.configMapKeyRef
            ? `${e.name}=config-map:${e.valueFrom!.configMapKeyRef.name}:${e.valueFrom!.configMapKeyRef.key}`
            : `${e.name}=secret:${e.valueFrom!.secretKeyRef!.name}:${e.valueFrom!.secretKeyRef!.key}`,
        );
      expect(f.get('--env-value-from') ?? []).toEqual(fromRefs);
      const fromFlags: Record<string, string | undefined> = {
        [`${A}min-scale`]: one('--scale-min'),
        [`${A}max-scale`]: one('--scale-max'),
        [`${A}target`]: one('--scale-target'),
        [`${A}target-utilization-percentage`]: one('--scale-utilization'),
        [`${A}window`]: one('--scale-window'),
      };
      for (const entry of f.get('--annotation-revision') ?? []) {
        const at = entry.indexOf('=');
        fromFlags[entry.slice(0, at)] = entry.slice(at + 1);
      }
      expect(Object.fromEntries(Object.entries(fromFlags).filter(([, v]) => v !== undefined))).toEqual(annotations);
      expect(Number(one('--concurrency-limit'))).toBe(template.spec.containerConcurrency);
      expect(Number(one('--timeout'))).toBe(template.spec.timeoutSeconds);
      const quantities = (text: string | undefined) =>
        Object.fromEntries((text ?? '').split(',').map((kv) => kv.split('=')));
      expect(quantities(one('--request'))).toEqual(container.resources.requests);
      expect(quantities(one('--limit'))).toEqual(container.resources.limits);
      expect(one('--probe-readiness')).toBe(`tcp::${container.readinessProbe.tcpSocket.port}`);
      expect(one('--security-context')).toBe('strict');
      expect(Number(one('--user'))).toBe(container.securityContext.runAsUser);
      expect(one('--service-account')).toBe(template.spec.serviceAccountName);
      expect(f.has('--cluster-local')).toBe(
        doc!.metadata.labels?.['networking.knative.dev/visibility'] === 'cluster-local',
      );
      for (const label of f.get('--label') ?? []) {
        const [key, value] = label.split('=');
        expect(template.metadata.labels[key!]).toBe(value);
      }
    },
  );

  it('the kubectl pipeline applies every object of the overlay except the Knative Services, with the pushed image', () => {
    const rendered = spawnSync('node', ['scripts/deploy-lib/manifests.mjs', '--image', IMAGE], {
      cwd: ROOT,
      encoding: 'utf8',
      input: kustomizeYaml('knative/overlays/prod'),
    });
    expect(rendered.status).toBe(0);
    const applied = parseDocuments(rendered.stdout) as K8sObject[];
    const overlay = kustomize('knative/overlays/prod');
    const ksvc = overlay.filter((doc) => doc.apiVersion.startsWith('serving.knative.dev/'));
    expect(applied.map(identity).sort()).toEqual(
      overlay
        .filter((doc) => !ksvc.includes(doc))
        .map(identity)
        .sort(),
    );
    expect(ksvc.map((doc) => doc.metadata.name).sort()).toEqual(knLines.map((l) => words(l)[3]).sort());
    const bridge = applied.find((doc) => doc.kind === 'StatefulSet')!;
    expect(bridge.spec.template.spec.containers[0].image).toBe(IMAGE);
  });
});
