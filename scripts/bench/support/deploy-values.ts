import { readFileSync } from 'node:fs';

interface DeployValues {
  services: Record<string, { env?: Record<string, string> }>;
  bridge?: { env?: Record<string, string> };
}

/**
 * NODE_OPTIONS a deployable runs with in production (its heap cap under the memory limit), from
 * knative/deploy-values.json, the values its manifests are rendered from; '' when it sets none.
 */
export function productionNodeOptions(deployable: string): string {
  const values = JSON.parse(readFileSync('knative/deploy-values.json', 'utf8')) as DeployValues;
  const env = deployable === 'bridge' ? values.bridge?.env : values.services[deployable]?.env;
  return env?.NODE_OPTIONS ?? '';
}
