import { spawnSync } from 'node:child_process';
import { ROOT } from './manifests.js';

/**
 * Knative's own admission code (tools/knative, built once by scripts/knative-admission.sh into .kiot/bin):
 * for each object of a YAML stream, the API server's strict decoding against the CRD schema, the defaulting
 * webhook, the schema validation and the validating webhook, as a create in a cluster would run them.
 */
export interface AdmissionResult {
  source: string;
  /** 1-based index of the document in its source. */
  document: number;
  apiVersion?: string;
  kind?: string;
  namespace?: string;
  name?: string;
  allowed: boolean;
  /** knative: CRD schema and webhooks; schema: CRD only; builtin: a Kubernetes kind (strict decoding); none. */
  checked: 'knative' | 'schema' | 'builtin' | 'none';
  /** kubectl's line: `<resource>/<name> admitted`, or the error kubectl would print. */
  message: string;
  warnings?: string[];
  /** The object as the cluster would store it (defaults applied). */
  object?: Record<string, unknown>;
}

let binary: string | undefined;

/** The admission command, built (or found up to date) on first use. */
export function admissionBinary(): string {
  if (binary) return binary;
  const result = spawnSync('bash', ['scripts/knative-admission.sh'], { cwd: ROOT, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`scripts/knative-admission.sh failed:\n${result.stderr}`);
  binary = result.stdout.trim();
  return binary;
}

export interface AdmissionOptions {
  /** YAML files of ConfigMaps (knative-serving / knative-eventing) that replace the release's settings. */
  configs?: string[];
  /** The name of the stream in messages (kubectl says STDIN). */
  source?: string;
}

function run(yaml: string, output: 'json' | 'text', options: AdmissionOptions) {
  const args = ['--output', output, '--source', options.source ?? 'STDIN'];
  for (const config of options.configs ?? []) args.push('--config', config);
  const result = spawnSync(admissionBinary(), args, { input: yaml, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (result.status !== 0 && result.status !== 1)
    throw new Error(`knative-admission exited ${result.status}: ${result.stderr || result.error?.message}`);
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Every object of `yaml` through admission: one result per document, in order. */
export function admit(yaml: string, options: AdmissionOptions = {}): AdmissionResult[] {
  return JSON.parse(run(yaml, 'json', options).stdout) as AdmissionResult[];
}

/** The command's own output: kubectl's lines on stdout (admitted) and stderr (refused, warnings). */
export function admitText(yaml: string, options: AdmissionOptions = {}) {
  return run(yaml, 'text', options);
}
