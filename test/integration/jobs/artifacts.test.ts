import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type JobsHarness, jobBody, startJobsHarness } from './harness.js';

// OTA artifacts: streamed upload into GridFS with SHA-256, device download with Range, retention.
let h: JobsHarness;
const MAX = 3 * 1024 * 1024;
beforeAll(async () => {
  h = await startJobsHarness({ env: { ARTIFACT_MAX_BYTES: String(MAX) } });
});
afterAll(async () => {
  await h?.close();
});

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

async function upload(bytes: Buffer | AsyncIterable<Buffer>, headers: Record<string, string> = {}, name = 'fw') {
  const response = await fetch(`${h.instances[0]!.base}/artifacts?name=${name}&version=1.2.3`, {
    method: 'POST',
    headers: { authorization: `Bearer ${h.apiKey}`, 'content-type': 'application/octet-stream', ...headers },
    body: bytes as never,
    ...(Buffer.isBuffer(bytes) ? {} : { duplex: 'half' }),
  } as RequestInit);
  return { status: response.status, body: (await response.json()) as any };
}

async function* chunked(total: number, size: number) {
  for (let sent = 0; sent < total; sent += size) yield randomBytes(Math.min(size, total - sent));
}

describe('artifacts', () => {
  it('uploads a stream, stores its SHA-256, and a targeted device downloads it whole and by ranges', async () => {
    const firmware = randomBytes(700_000); // several GridFS chunks
    const stored = await upload(firmware, {
      'content-digest': `sha-256=:${createHash('sha256').update(firmware).digest('base64')}:`,
    });
    expect(stored.status).toBe(201);
    expect(stored.body).toMatchObject({ size: firmware.length, sha256: sha256(firmware), version: '1.2.3' });
    const artifactId = stored.body.artifactId;

    const device = h.id('ota-dev');
    const outsider = h.id('ota-outsider');
    await h.addDevices([
      { id: device, secret: 'device-secret-0123456789abcdef' },
      { id: outsider, secret: 'outsider-secret-0123456789' },
    ]);
    const jobId = h.id('ota');
    const created = await h.request('POST', '/jobs', {
      jobId,
      type: 'ota',
      document: { operation: 'ota', artifactId, version: '1.2.3', sha256: sha256(firmware), size: firmware.length },
      targets: { deviceIds: [device] },
    });
    expect(created.status).toBe(201);
    await h.pass();
    const next = await h.waitFor(device, '/jobs/notify-next');
    const url = String(next.payload.execution.jobDocument.url);
    expect(url).toBe(`http://jobs.test/artifacts/${artifactId}/content`);
    const path = new URL(url).pathname;
    const get = (headers: Record<string, string>) => fetch(`${h.instances[0]!.base}${path}`, { headers });

    const whole = await get({ authorization: basic(device, 'device-secret-0123456789abcdef') });
    expect(whole.status).toBe(200);
    expect(whole.headers.get('accept-ranges')).toBe('bytes');
    const body = Buffer.from(await whole.arrayBuffer());
    expect(sha256(body)).toBe(sha256(firmware));

    // Resume: the rest after the first 300,000 bytes, across chunk boundaries.
    const rest = await get({ authorization: basic(device, 'device-secret-0123456789abcdef'), range: 'bytes=300000-' });
    expect(rest.status).toBe(206);
    expect(rest.headers.get('content-range')).toBe(`bytes 300000-${firmware.length - 1}/${firmware.length}`);
    const resumed = Buffer.concat([firmware.subarray(0, 300_000), Buffer.from(await rest.arrayBuffer())]);
    expect(sha256(resumed)).toBe(stored.body.sha256);
    const middle = await get({
      authorization: basic(device, 'device-secret-0123456789abcdef'),
      range: 'bytes=261000-262999',
    });
    expect(Buffer.from(await middle.arrayBuffer()).equals(firmware.subarray(261_000, 263_000))).toBe(true);
    const beyond = await get({
      authorization: basic(device, 'device-secret-0123456789abcdef'),
      range: `bytes=${firmware.length}-`,
    });
    expect(beyond.status).toBe(416);
    expect(beyond.headers.get('content-range')).toBe(`bytes */${firmware.length}`);

    // Wrong secret, no credential, and a device without a job naming it: refused.
    expect((await get({ authorization: basic(device, 'wrong-secret-0123456789abcdef') })).status).toBe(401);
    expect((await get({})).status).toBe(401);
    expect((await get({ authorization: basic(outsider, 'outsider-secret-0123456789') })).status).toBe(404);

    // Retention: referenced → 409; once the job is gone the artifact can be deleted.
    expect((await h.request('DELETE', `/artifacts/${artifactId}`)).status).toBe(409);
    expect((await h.request('DELETE', `/jobs/${jobId}?force=true`)).status).toBe(204);
    expect((await h.request('DELETE', `/artifacts/${artifactId}`)).status).toBe(204);
    expect((await get({ authorization: basic(device, 'device-secret-0123456789abcdef') })).status).toBe(404);
  });

  it('refuses an upload larger than the maximum (413) and leaves nothing behind', async () => {
    const answer = await upload(chunked(MAX + 100_000, 64 * 1024) as AsyncIterable<Buffer>, {}, 'too-big');
    expect(answer.status).toBe(413);
    const list = await h.request('GET', '/artifacts');
    expect(list.body.items.some((a: { name: string }) => a.name === 'too-big')).toBe(false);
    const chunks = await (await h.mongo.db()).collection('artifact_blobs.chunks').countDocuments();
    const files = await (await h.mongo.db()).collection('artifact_blobs.files').countDocuments();
    expect({ chunks, files }).toEqual({ chunks: 0, files: 0 });
  });

  it('refuses a body that does not match its Content-Digest (422)', async () => {
    const answer = await upload(randomBytes(1000), {
      'content-digest': `sha-256=:${createHash('sha256').update('other').digest('base64')}:`,
    });
    expect(answer.status).toBe(422);
    expect(answer.body.error.code).toBe('digest_mismatch');
  });

  it('an OTA job must name an existing artifact with its hash', async () => {
    const stored = await upload(randomBytes(10));
    const base = { type: 'ota', targets: { deviceIds: [h.id('x')] } };
    const wrongHash = await h.request('POST', '/jobs', {
      ...base,
      jobId: h.id('ota-bad'),
      document: {
        operation: 'ota',
        artifactId: stored.body.artifactId,
        version: '1',
        sha256: 'a'.repeat(64),
        size: 10,
      },
    });
    expect(wrongHash.status).toBe(422);
    const missing = await h.request('POST', '/jobs', {
      ...base,
      jobId: h.id('ota-missing'),
      document: { operation: 'ota', artifactId: 'f'.repeat(24), version: '1', sha256: 'a'.repeat(64), size: 10 },
    });
    expect(missing.status).toBe(404);
    expect(
      (await h.request('POST', '/jobs', jobBody(h.id('ota-shape'), { deviceIds: ['x'] }, { type: 'ota' }))).status,
    ).toBe(400);
  });
});
