import { Readable } from 'node:stream';
import { z } from 'zod';
import { PUBLIC_SCOPE } from '../../shared/api-keys.js';
import { type DeviceAuthenticator, parseBasic } from '../../shared/device-auth.js';
import { deviceIdSchema } from '../../shared/devices.js';
import { AppError, ConflictError, NotFoundError, parseInput } from '../../shared/errors.js';
import type { HttpResult } from '../../shared/function-app.js';
import { queryObject } from '../../shared/http-io.js';
import { type ApiOperation, appProblems, operation, problem } from '../../shared/openapi.js';
import type { ArtifactDocument } from './artifact-store.js';
import type { JobDeps } from './deps.js';

const artifactIdSchema = z.string().regex(/^[a-f0-9]{24}$/, 'an artifact id (24 hex digits)');
const uploadQuerySchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9._-]{1,128}$/, 'use 1-128 of A-Z a-z 0-9 . _ -'),
    version: z.string().min(1).max(64),
  })
  .strict();

export const artifactViewSchema = z.object({
  artifactId: z.string(),
  name: z.string(),
  version: z.string(),
  contentType: z.string(),
  size: z.number().int(),
  sha256: z.string(),
  createdAt: z.string(),
});

const toView = (doc: ArtifactDocument) => ({
  artifactId: doc._id,
  name: doc.name,
  version: doc.version,
  contentType: doc.contentType,
  size: doc.size,
  sha256: doc.sha256,
  createdAt: doc.createdAt.toISOString(),
});

/** RFC 9530 `Content-Digest: sha-256=:<base64>:`, as lower-case hex. */
function expectedSha256(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const match = /(?:^|,)\s*sha-256=:([A-Za-z0-9+/=]+):/i.exec(header);
  if (!match) throw new AppError(400, 'invalid_digest', 'Content-Digest must carry sha-256=:<base64>:');
  return Buffer.from(match[1]!, 'base64').toString('hex');
}

const listArtifactsQuerySchema = z.object({
  cursor: artifactIdSchema.optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

/**
 * One `Range: bytes=…` (RFC 9110 §14.1.2) resolved against the size: the inclusive range to send, 'unsatisfiable',
 * or undefined for the whole body (no header, several ranges, another unit).
 */
export function parseRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | 'unsatisfiable' | undefined {
  if (header === undefined) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match || (match[1] === '' && match[2] === '')) return undefined;
  if (match[1] === '') {
    const suffix = Number(match[2]);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(match[1]);
  const end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
  if (start >= size || end < start) return 'unsatisfiable';
  return { start, end };
}

export function artifactOperations(deps: JobDeps, devices: DeviceAuthenticator): ApiOperation[] {
  return [
    operation({
      method: 'POST',
      path: '/artifacts',
      scope: 'artifacts:write',
      streamBody: true,
      summary: 'Upload a firmware artifact: the body is streamed into GridFS and its SHA-256 computed',
      query: uploadQuerySchema,
      headers: {
        'content-digest': {
          description: 'optional `sha-256=:<base64>:` (RFC 9530); a body that differs is 422',
          schema: z.string().regex(/(^|,)\s*[Ss][Hh][Aa]-256=:[A-Za-z0-9+/=]+:/),
        },
      },
      rules: ['Content-Digest carries sha-256=:<base64>: (400)', 'the body matches its Content-Digest (422)'],
      responses: {
        201: { description: 'stored', schema: artifactViewSchema },
        ...appProblems,
        413: problem('larger than the configured maximum'),
        422: problem('the body does not match its Content-Digest'),
      },
      async handle(req): Promise<HttpResult> {
        const query = parseInput(uploadQuerySchema, queryObject(req.query), 'query');
        const artifact = await deps.artifacts.upload(
          {
            ...query,
            contentType: req.headers['content-type'] ?? 'application/octet-stream',
            expectedSha256: expectedSha256(req.headers['content-digest']),
          },
          req.stream ?? Readable.from([req.rawBody]),
          deps.settings.artifactMaxBytes,
          deps.clock(),
        );
        return { status: 201, body: toView(artifact), headers: { location: `/artifacts/${artifact._id}` } };
      },
    }),
    operation({
      method: 'GET',
      path: '/artifacts',
      scope: 'artifacts:read',
      summary: 'Artifacts, by id; cursor pagination',
      query: listArtifactsQuerySchema,
      responses: {
        200: { description: 'a page', schema: z.object({ items: z.array(artifactViewSchema) }) },
        ...appProblems,
      },
      async handle(req) {
        const { cursor, limit } = parseInput(listArtifactsQuerySchema, queryObject(req.query), 'query');
        const items = await deps.artifacts.list(cursor, limit);
        return { status: 200, body: { items: items.map(toView) } };
      },
    }),
    operation({
      method: 'DELETE',
      path: '/artifacts/:artifactId',
      params: { artifactId: artifactIdSchema },
      scope: 'artifacts:write',
      summary: 'Delete an artifact no job references (retention)',
      responses: {
        204: { description: 'deleted' },
        ...appProblems,
        404: problem('no such artifact'),
        409: problem('a job still references it; delete the job first'),
      },
      async handle(req) {
        const id = parseInput(artifactIdSchema, req.params.artifactId, 'artifact id');
        if (await deps.jobs.referencesArtifact(id)) {
          throw new ConflictError(`a job references artifact ${id}`, 'artifact_in_use');
        }
        if (!(await deps.artifacts.remove(id))) throw new NotFoundError(`no artifact ${id}`, 'artifact_not_found');
        return { status: 204 };
      },
    }),
    operation({
      method: 'GET',
      path: '/artifacts/:artifactId/content',
      params: { artifactId: artifactIdSchema },
      // No API key: the device's own credential (checked in the handler) is what opens it.
      scope: PUBLIC_SCOPE,
      summary:
        'Download an artifact as a device (HTTP Basic: device id and secret) that has a job naming it; resumable with Range',
      headers: {
        authorization: { description: 'Basic base64(deviceId:secret)', required: true },
        range: { description: 'bytes=start-end (one range)' },
        'if-range': { description: 'the ETag: a Range applies only while the artifact is the same' },
      },
      responses: {
        200: {
          description: 'the whole artifact',
          headers: { etag: 'the SHA-256', 'repr-digest': 'sha-256 (RFC 9530)' },
        },
        206: { description: 'the range asked for', headers: { 'content-range': 'bytes start-end/size' } },
        401: problem('no valid device credential'),
        404: problem('no such artifact, or no job of this device names it'),
        416: problem('the range is outside the artifact'),
      },
      async handle(req): Promise<HttpResult> {
        const id = parseInput(artifactIdSchema, req.params.artifactId, 'artifact id');
        const deviceId = deviceIdOf(req.headers.authorization);
        await devices.authenticate(deviceId, req.headers.authorization);
        const artifact = await deps.artifacts.get(id);
        // One answer for "no such artifact" and "not yours": a device learns nothing of other devices' jobs.
        const notFound = new NotFoundError(`no artifact ${id} for this device`, 'artifact_not_found');
        if (artifact?.status !== 'ready') throw notFound;
        if (!(await deviceHasJobFor(id, deviceId, deps))) throw notFound;
        const etag = `"${artifact.sha256}"`;
        const common = {
          'accept-ranges': 'bytes',
          etag,
          'repr-digest': `sha-256=:${Buffer.from(artifact.sha256, 'hex').toString('base64')}:`,
          'content-type': artifact.contentType,
        };
        const ifRange = req.headers['if-range'];
        const range =
          ifRange === undefined || ifRange === etag ? parseRange(req.headers.range, artifact.size) : undefined;
        if (range === 'unsatisfiable') {
          throw new AppError(416, 'range_not_satisfiable', `the artifact has ${artifact.size} bytes`, undefined, {
            'content-range': `bytes */${artifact.size}`,
          });
        }
        if (!range) {
          return {
            status: 200,
            headers: { ...common, 'content-length': String(artifact.size) },
            body: await deps.artifacts.open(artifact),
          };
        }
        return {
          status: 206,
          headers: {
            ...common,
            'content-length': String(range.end - range.start + 1),
            'content-range': `bytes ${range.start}-${range.end}/${artifact.size}`,
          },
          body: await deps.artifacts.open(artifact, range),
        };
      },
    }),
  ];
}

function deviceIdOf(authorization: string | undefined): string {
  const user = parseBasic(authorization)?.user;
  return user !== undefined && deviceIdSchema.safeParse(user).success ? user : '-';
}

async function deviceHasJobFor(artifactId: string, deviceId: string, deps: JobDeps): Promise<boolean> {
  for (const jobId of await deps.jobs.idsReferencingArtifact(artifactId)) {
    if ((await deps.executions.get(jobId, deviceId))?.released) return true;
  }
  return false;
}
