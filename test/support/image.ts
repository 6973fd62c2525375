import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { ROOT } from '../unit/knative/lib/manifests.js';
import type { Workload } from './workloads.js';

// The repository's image (scripts/image/build.sh) and containers of it, run as Kubernetes would run a
// workload of knative/: its command as the entrypoint, its environment, its security context.

export interface BuiltImage {
  image: string;
  id: string;
  engine: 'docker' | 'podman' | 'buildah';
  /** The engine command (with its storage options) that runs containers of the image. */
  run: string[];
  hash: string;
  reused: boolean;
  base: string;
  baseSource: 'present' | 'pulled' | 'local';
  seconds: { base: number; build: number; total: number };
}

const exec = promisify(execFile);

/** `npm run image`: builds the image, or reuses the one of the same inputs. Rejects with the build's tail. */
export function buildImage(): Promise<BuiltImage> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['scripts/image/build.sh'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-20_000)));
    child.once('error', reject);
    child.once('exit', (code) => {
      const last = stdout.trim().split('\n').pop() ?? '';
      if (code === 0 && last.startsWith('{')) resolve(JSON.parse(last) as BuiltImage);
      else reject(new Error(`scripts/image/build.sh exited with ${code}:\n${stderr.slice(-4000)}`));
    });
  });
}

/** Runs the engine (`built.run`) with `args`; resolves with its stdout, rejects with its stderr. */
export async function engine(built: BuiltImage, args: string[], options: { timeoutMs?: number } = {}): Promise<string> {
  const [command, ...prefix] = built.run;
  const { stdout } = await exec(command!, [...prefix, ...args], {
    maxBuffer: 64 * 1024 * 1024,
    timeout: options.timeoutMs ?? 120_000,
  });
  return stdout;
}

// What this sandbox's runc accepts (the engine's defaults ask for more open files and processes than the
// machine allows, and runc refuses to start).
const ULIMITS = ['--ulimit', 'nofile=20000:20000', '--ulimit', 'nproc=32768:32768'];

/** `run --rm --entrypoint <entrypoint> IMAGE ...args`: a one-off command in a container of the image. */
export function runOnce(built: BuiltImage, entrypoint: string, args: string[]): Promise<string> {
  return engine(built, ['run', '--rm', ...ULIMITS, '--entrypoint', entrypoint, built.image, ...args]);
}

/** Addresses the container uses for the host's loopback: podman's slirp4netns maps the host's 127.0.0.1
 * to 10.0.2.2; with docker the container shares the host's network. */
export function hostLoopback(built: BuiltImage): string {
  return built.engine === 'docker' ? '127.0.0.1' : '10.0.2.2';
}

/** A URL on the host's loopback as the container reaches it. */
export function fromContainer(built: BuiltImage, value: string): string {
  return value.replace(/^([a-z+]+:\/\/(?:[^@/]*@)?)(127\.0\.0\.1|localhost)(?=[:/]|$)/, `$1${hostLoopback(built)}`);
}

/**
 * `run --detach` arguments for a workload, as the kubelet would start it: the manifest's command as the
 * entrypoint (its first word) and arguments (the rest), its user and group, a read-only root filesystem (and no writable /tmp, which podman would
 * add), every capability dropped, no privilege escalation (no_new_privs), the runtime's default seccomp
 * profile. With podman the container has a network of its own (slirp4netns) that reaches the host's
 * loopback, and its port is published on `hostPort`; docker shares the host's network and gets PORT=hostPort.
 */
export function runArgs(built: BuiltImage, workload: Workload, name: string, hostPort: number): string[] {
  const security = workload.securityContext;
  const [entrypoint, ...commandArgs] = workload.command;
  const args = ['run', '--detach', '--name', name, '--entrypoint', entrypoint!];
  args.push('--user', `${security.runAsUser}:${security.runAsGroup ?? security.runAsUser}`);
  if (security.readOnlyRootFilesystem) args.push('--read-only');
  for (const capability of security.capabilities?.drop ?? []) args.push('--cap-drop', capability);
  if (security.allowPrivilegeEscalation === false) args.push('--security-opt', 'no-new-privileges');
  args.push(...ULIMITS);
  const env = { ...workload.env };
  if (built.engine === 'docker') {
    args.push('--network', 'host');
    env.PORT = String(hostPort);
  } else {
    if (security.readOnlyRootFilesystem) args.push('--read-only-tmpfs=false');
    args.push('--network', 'slirp4netns:allow_host_loopback=true');
    args.push('--publish', `127.0.0.1:${hostPort}:${workload.port}`);
  }
  for (const [key, value] of Object.entries(env)) args.push('--env', `${key}=${fromContainer(built, value)}`);
  args.push(built.image, ...commandArgs);
  return args;
}
