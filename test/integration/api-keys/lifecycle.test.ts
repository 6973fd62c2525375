import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKeysApp } from '../../../functions/api-keys/app.js';
import { createKeyRepository } from '../../../functions/api-keys/key-repository.js';
import { API_KEYS_COLLECTION, type ApiKeyDocument } from '../../../shared/api-key-store.js';
import { mintApiKey } from '../../../shared/api-keys.js';
import { createAppAuthorizer } from '../../../shared/app-authorizer.js';
import { createLogger } from '../../../shared/logger.js';
import { createMongo } from '../../../shared/mongo.js';
import { createFunctionServer } from '../../../shared/serve.js';
import { MONGODB_URL, uniqueName } from '../../support/services.js';

async function until<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

// Two instances of api-keys on one database, each with its own caches: what one creates or revokes, the
// other honours (revocation within API_KEY_REVOCATION_SECONDS, 1 s here).
describe('managed API keys across two instances', () => {
  const db = uniqueName('keys')
    .replace(/[^A-Za-z0-9_-]/g, '_')
    .slice(0, 60);
  const mongo = createMongo(MONGODB_URL, db);
  const logLines: Record<string, unknown>[] = [];
  const servers: Server[] = [];
  const bases: string[] = [];
  let boot: string;

  beforeAll(async () => {
    const bootstrap = await mintApiKey('boot', ['*']);
    boot = bootstrap.key;
    const config = { API_KEYS: [bootstrap.entry], API_KEY_REVOCATION_SECONDS: 1 };
    for (const instance of ['a', 'b']) {
      const sink = new Writable({
        write(chunk, _encoding, done) {
          for (const line of String(chunk).split('\n').filter(Boolean))
            logLines.push({ instance, ...JSON.parse(line) });
          done();
        },
      });
      const logger = createLogger('api-keys', 'info', sink);
      const handler = createApiKeysApp(
        { keys: createKeyRepository(mongo), now: () => new Date(), bootstrapIds: new Set(['boot']) },
        { logger, authorize: createAppAuthorizer(config, mongo, logger), health: {} },
      );
      const server = createFunctionServer(uniqueName(`api-keys-${instance}`), handler);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      servers.push(server);
      bases.push(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    }
  });

  afterAll(async () => {
    for (const server of servers) await new Promise((resolve) => server.close(resolve));
    await (await mongo.db()).dropDatabase();
    await mongo.close();
  });

  const call = async (instance: number, method: string, path: string, key: string, body?: unknown) => {
    const response = await fetch(`${bases[instance]}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const text = await response.text();
    return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : undefined };
  };
  const create = (body: unknown, key = boot) => call(0, 'POST', '/api-keys', key, body);

  it('creates a key shown once, stores only its hash, and logs who made the change', async () => {
    const created = await create({ name: 'dashboard', scopes: ['keys:read'] });
    expect(created.status).toBe(201);
    expect(created.headers.get('cache-control')).toBe('no-store');
    expect(created.body).toMatchObject({
      name: 'dashboard',
      scopes: ['keys:read'],
      status: 'active',
      createdBy: 'boot',
    });
    expect(created.body.key).toMatch(new RegExp(`^kiot_${created.body.id}_[A-Za-z0-9_-]{43}$`));
    const secret = (created.body.key as string).split('_').slice(2).join('_');

    const read = await call(1, 'GET', `/api-keys/${created.body.id}`, boot);
    expect(read.status).toBe(200);
    expect(read.body.key).toBeUndefined();
    const stored = (await (
      await mongo.db()
    )
      .collection<ApiKeyDocument>(API_KEYS_COLLECTION)
      .findOne({ _id: created.body.id }))!;
    expect(stored.hash).toMatch(/^scrypt\$/);
    expect(JSON.stringify(stored)).not.toContain(secret);

    const audit = logLines.find(
      (line) =>
        line.msg === 'request' && (line.http as { method?: string })?.method === 'POST' && line.instance === 'a',
    );
    expect(audit).toMatchObject({ keyId: 'boot', http: { route: 'POST /api-keys', status: 201 } });
  });

  it('lets a key work on the other instance, records its last use, and refuses scopes it lacks', async () => {
    const { body } = await create({ name: 'reader', scopes: ['keys:read'] });
    expect((await call(1, 'GET', '/api-keys', body.key)).status).toBe(200);
    const used = await until(async () => {
      const view = await call(0, 'GET', `/api-keys/${body.id}`, boot);
      return view.body.lastUsedAt ?? undefined;
    }, 'lastUsedAt');
    expect(Date.parse(used)).toBeGreaterThan(Date.parse(body.createdAt) - 1);
    // keys:read cannot create; keys:write cannot grant more than its holder has.
    expect((await create({ name: 'x', scopes: ['keys:read'] }, body.key)).status).toBe(403);
    const writer = await create({ name: 'writer', scopes: ['keys:write'] });
    const escalation = await create({ name: 'root', scopes: ['*'] }, writer.body.key);
    expect(escalation.status).toBe(403);
    expect(escalation.body.error.details).toEqual({ notGranted: ['*'] });
    expect((await create({ name: 'same', scopes: ['keys:write'] }, writer.body.key)).status).toBe(201);
  });

  it('tells a key what it may do (GET /api-keys/self), whatever its scopes, and no one without a key', async () => {
    const { body } = await create({ name: 'viewer', scopes: ['devices:read', 'telemetry:read'] });
    const self = await call(1, 'GET', '/api-keys/self', body.key);
    expect(self.status).toBe(200);
    expect(self.headers.get('cache-control')).toBe('no-store');
    expect(self.body).toEqual({
      id: body.id,
      scopes: ['devices:read', 'telemetry:read'],
      source: 'managed',
      name: 'viewer',
      expiresAt: null,
    });
    expect((await call(0, 'GET', '/api-keys/self', boot)).body).toEqual({
      id: 'boot',
      scopes: ['*'],
      source: 'bootstrap',
      name: null,
      expiresAt: null,
    });
    expect(
      (await call(0, 'GET', '/api-keys/self', 'kiot_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'))
        .status,
    ).toBe(401);
    // A key without keys:read still cannot list or read other keys.
    expect((await call(0, 'GET', `/api-keys/${body.id}`, body.key)).status).toBe(403);
  });

  it('revoked on one instance, refused on the other (within API_KEY_REVOCATION_SECONDS)', async () => {
    const { body } = await create({ name: 'leaked', scopes: ['keys:read'] });
    expect((await call(1, 'GET', '/api-keys', body.key)).status).toBe(200);
    const revoked = await call(0, 'DELETE', `/api-keys/${body.id}`, boot);
    expect(revoked.body).toMatchObject({ status: 'revoked', revokedBy: 'boot' });
    const refusal = await until(async () => {
      const answer = await call(1, 'GET', '/api-keys', body.key);
      return answer.status === 200 ? undefined : answer;
    }, 'instance b to refuse the revoked key');
    expect(refusal).toMatchObject({ status: 401, body: { error: { message: 'the API key is revoked' } } });
    expect(refusal.headers.get('www-authenticate')).toBe('Bearer');
    expect((await call(0, 'DELETE', `/api-keys/${body.id}`, boot)).status).toBe(200);
  });

  it('refuses a key once it expired, and says so', async () => {
    const expiresAt = new Date(Date.now() + 1_500).toISOString();
    const { body } = await create({ name: 'temp', scopes: ['keys:read'], expiresAt });
    expect(body.expiresAt).toBe(expiresAt);
    const refusal = await until(async () => {
      const answer = await call(1, 'GET', '/api-keys', body.key);
      return answer.status === 200 ? undefined : answer;
    }, 'the key to expire');
    expect(refusal).toMatchObject({ status: 401, body: { error: { message: 'the API key is expired' } } });
    expect((await call(0, 'GET', `/api-keys/${body.id}`, boot)).body.status).toBe('expired');
    const past = await create({
      name: 'past',
      scopes: ['keys:read'],
      expiresAt: new Date(Date.now() - 1).toISOString(),
    });
    expect(past.status).toBe(400);
  });

  it('lists newest first with a cursor and a status filter; a bootstrap key is not revoked here', async () => {
    const first = await call(0, 'GET', '/api-keys?limit=2', boot);
    expect(first.body.items).toHaveLength(2);
    expect(Date.parse(first.body.items[0].createdAt)).toBeGreaterThanOrEqual(Date.parse(first.body.items[1].createdAt));
    const second = await call(0, 'GET', `/api-keys?limit=200&cursor=${first.body.nextCursor}`, boot);
    const all = await call(0, 'GET', '/api-keys?limit=200', boot);
    expect([...first.body.items, ...second.body.items].map((item: { id: string }) => item.id)).toEqual(
      all.body.items.map((item: { id: string }) => item.id),
    );
    const revoked = await call(0, 'GET', '/api-keys?status=revoked', boot);
    expect(revoked.body.items.map((item: { status: string }) => item.status)).toEqual(['revoked']);
    expect((await call(0, 'DELETE', '/api-keys/boot', boot)).status).toBe(409);
    expect((await call(0, 'DELETE', '/api-keys/0000000000000000', boot)).status).toBe(404);
    // Any key's id may be asked for (GET /api-keys/self names bootstrap ids); a bootstrap key has no record here.
    expect((await call(0, 'GET', '/api-keys/boot', boot)).status).toBe(404);
    expect((await call(0, 'GET', `/api-keys/${'x'.repeat(40)}`, boot)).status).toBe(400);
  });

  it('refuses every CloudEvent: no event is ever for this function', async () => {
    const answer = await fetch(`${bases[0]}/`, {
      method: 'POST',
      headers: { 'ce-specversion': '1.0', 'ce-id': 'x', 'ce-source': '/me', 'ce-type': 'io.kiot.anything' },
      body: '{}',
    });
    expect(answer.status).toBe(403);
    expect(await answer.json()).toMatchObject({ error: { code: 'events_not_accepted' } });
  });
});
