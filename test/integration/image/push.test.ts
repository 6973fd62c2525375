import { execFile, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BuiltImage, buildImage } from '../../support/image.js';
import { ROOT } from '../../unit/knative/lib/manifests.js';

// `npm run image:push` (scripts/image/push.sh), what scripts/deploy runs after `npm run image`: it pushes the
// image just built with the engine that built it. No registry is reachable here, so the destination is a
// docker-archive (what `docker load` reads, and the same push code path for podman and buildah): the archive
// must hold exactly the built image — its config digest is the image id — under the given name.
const exec = promisify(execFile);
let built: BuiltImage;
const dir = mkdtempSync(join(tmpdir(), 'kiot-push-'));

beforeAll(async () => {
  built = await buildImage();
}, 1_200_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const tarFile = async (archive: string, member: string): Promise<Buffer> =>
  (await exec('tar', ['-xOf', archive, member], { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 })).stdout;

describe('npm run image:push', () => {
  it('pushes the image npm run image built, with its engine: the archive holds that image', async () => {
    const archive = join(dir, 'kiot.tar');
    await exec('bash', ['scripts/image/push.sh', `docker-archive:${archive}:registry.example/acme/kiot:t1`], {
      cwd: ROOT,
      timeout: 600_000,
    });
    const [manifest] = JSON.parse((await tarFile(archive, 'manifest.json')).toString()) as {
      Config: string;
      RepoTags: string[];
      Layers: string[];
    }[];
    expect(manifest!.RepoTags).toContain('registry.example/acme/kiot:t1');
    const config = await tarFile(archive, manifest!.Config);
    expect(`sha256:${createHash('sha256').update(config).digest('hex')}`).toBe(
      built.id.startsWith('sha256:') ? built.id : `sha256:${built.id}`,
    );
    const labels = (JSON.parse(config.toString()) as { config: { Labels: Record<string, string> } }).config.Labels;
    expect(labels['io.kiot.context-hash']).toBe(built.hash);
    expect(manifest!.Layers.length).toBeGreaterThan(0);
  }, 600_000);

  it('refuses to run without exactly one destination', () => {
    const result = spawnSync('bash', ['scripts/image/push.sh'], { cwd: ROOT, encoding: 'utf8' });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('usage: npm run image:push -- REGISTRY/NAME:TAG');
  });
});
