// scripts/deploy: build and push the image (npm run image, npm run image:push), apply what kn cannot express
// with kubectl, then create or replace every function with `kn service create … --force`. Values come from
// knative/deploy-values.json.
//
//   scripts/deploy render [--check]                      write (or compare) the manifests from the values
//   scripts/deploy --registry REG [--tag T] [--overlay base|dev|prod|oidc|prod-oidc] [--only a,b] [--secrets-env FILE]
//                  [--skip-build] [--dry-run]
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { knServiceCreateArgs } from './kn.mjs';
import { writeRendered } from './render.mjs';
import { imageRef, knativeServicesOf, loadValues, ROOT } from './values.mjs';

const USAGE = `usage:
  scripts/deploy render [--check]
  scripts/deploy --registry REGISTRY [--tag TAG] [--overlay base|dev|prod|oidc|prod-oidc] [--only NAME,…]
                 [--secrets-env FILE] [--skip-build] [--dry-run]
`;

function parseArgs(argv) {
  const options = { command: 'deploy', overlay: 'base', dryRun: false, skipBuild: false, check: false };
  const rest = [...argv];
  if (rest[0] === 'render') {
    options.command = 'render';
    rest.shift();
  }
  while (rest.length > 0) {
    const flag = rest.shift();
    const value = () => {
      const next = rest.shift();
      if (next === undefined || next.startsWith('--')) throw new Error(`${flag} needs a value`);
      return next;
    };
    switch (flag) {
      case '--registry':
        options.registry = value();
        break;
      case '--tag':
        options.tag = value();
        break;
      case '--overlay':
        options.overlay = value();
        break;
      case '--only':
        options.only = value().split(',').filter(Boolean);
        break;
      case '--secrets-env':
        options.secretsEnv = value();
        break;
      case '--skip-build':
        options.skipBuild = true;
        break;
      case '--dry-run':
        options.dryRun = true;
        break;
      case '--check':
        options.check = true;
        break;
      case '-h':
      case '--help':
        options.command = 'help';
        break;
      default:
        throw new Error(`unknown option ${flag}`);
    }
  }
  return options;
}

const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;
export const quote = (arg) => (SAFE.test(arg) ? arg : `'${arg.replaceAll("'", "'\\''")}'`);
const line = (argv) => argv.map(quote).join(' ');

function defaultTag() {
  try {
    return execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch {
    return 'latest';
  }
}

/** Every command of a deployment, in order, as shell lines. */
export function deployCommands(values, options) {
  const image = imageRef(values, options.registry, options.tag);
  const dir = options.overlay === 'base' ? 'knative' : `knative/overlays/${options.overlay}`;
  if (!existsSync(join(ROOT, dir, 'kustomization.yaml'))) throw new Error(`no kustomization in ${dir}`);
  // --only names functions (both Services of a split one) or single Knative Services (`telemetry-ingest-events`).
  const services = knativeServicesOf(values);
  const names = services
    .filter((s) => !options.only || options.only.includes(s.name) || options.only.includes(s.function))
    .map((s) => s.name);
  for (const name of options.only ?? [])
    if (!services.some((s) => s.name === name || s.function === name))
      throw new Error(`no service ${name} in knative/deploy-values.json`);

  const commands = [];
  // The project's image build (docker, podman or buildah, whichever the machine has; its base made locally where
  // no registry answers), then a push with the same engine and storage (scripts/image/).
  if (!options.skipBuild) {
    commands.push(line(['npm', 'run', '--silent', 'image']));
    commands.push(line(['npm', 'run', '--silent', 'image:push', '--', image]));
  }
  if (options.secretsEnv) {
    const createSecret = line([
      'kubectl',
      'create',
      'secret',
      'generic',
      values.secret.name,
      '--namespace',
      values.namespace,
      `--from-env-file=${options.secretsEnv}`,
      '--dry-run=client',
      '--output=yaml',
    ]);
    commands.push(`${createSecret} | kubectl apply -f -`);
  }
  // Namespace, ConfigMap, Broker, Triggers, PingSources, the bridge: before the Services, whose revisions read the ConfigMap.
  commands.push(
    `${line(['kubectl', 'kustomize', '--load-restrictor', 'LoadRestrictionsNone', dir])} | ` +
      `${line(['node', 'scripts/deploy-lib/manifests.mjs', '--image', image])} | kubectl apply -f -`,
  );
  for (const name of names) commands.push(line(['kn', ...knServiceCreateArgs(values, name, image)]));
  commands.push(
    line([
      'kubectl',
      'rollout',
      'status',
      `statefulset/${values.bridge.name}`,
      '--namespace',
      values.namespace,
      '--timeout=10m',
    ]),
  );
  commands.push(line(['kn', 'service', 'list', '--namespace', values.namespace]));
  return commands;
}

function main() {
  let options;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${error.message}\n${USAGE}`);
    return 2;
  }
  if (options.command === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  if (options.command === 'render') {
    const differing = writeRendered({ check: options.check });
    process.stdout.write(
      differing.length ? `${options.check ? 'out of date' : 'wrote'}: ${differing.join(', ')}\n` : 'up to date\n',
    );
    return options.check && differing.length > 0 ? 1 : 0;
  }
  if (!options.registry && !options.skipBuild) {
    process.stderr.write(`--registry is required to push the image\n${USAGE}`);
    return 2;
  }
  const values = loadValues();
  const stale = writeRendered({ check: true });
  if (stale.length > 0) {
    process.stderr.write(
      `the manifests are out of date with knative/deploy-values.json: ${stale.join(', ')}; run scripts/deploy render\n`,
    );
    return 1;
  }
  options.tag ??= defaultTag();
  let commands;
  try {
    commands = deployCommands(values, options);
  } catch (error) {
    process.stderr.write(`${error.message}\n`);
    return 2;
  }
  for (const command of commands) {
    process.stdout.write(`${options.dryRun ? '' : '+ '}${command}\n`);
    if (options.dryRun) continue;
    const result = spawnSync('bash', ['-euo', 'pipefail', '-c', command], { cwd: ROOT, stdio: 'inherit' });
    if (result.status !== 0) {
      process.stderr.write(`failed (${result.status ?? result.signal}): ${command}\n`);
      return result.status ?? 1;
    }
  }
  return 0;
}

process.exitCode = main();
