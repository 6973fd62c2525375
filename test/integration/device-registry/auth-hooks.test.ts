import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { namesOnDistinctShards } from '../../support/redis-keys.js';
import { uniqueName } from '../../support/services.js';
import { type Harness, startHarness } from './harness.js';

// EMQX-style HTTP authn/authz hooks answered from the registry (MongoDB) through the Redis cache.
describe('device-registry broker auth hooks', () => {
  let h: Harness;
  let id: string;
  let secret: string;
  let etag: string;
  beforeAll(async () => {
    h = await startHarness();
    id = uniqueName('hook');
    const response = await h.api('/devices', { body: { id } });
    etag = response.headers.get('etag')!;
    secret = ((await response.json()) as { secret: string }).secret;
  });
  afterAll(async () => h?.close());

  const authn = async (body: Record<string, string | boolean>) =>
    (await (await h.api('/broker/authn', { key: h.keys.hooks, body })).json()) as {
      result: string;
      is_superuser: boolean;
      acl?: unknown[];
    };
  const authz = async (body: Record<string, string>) =>
    ((await (await h.api('/broker/authz', { key: h.keys.hooks, body })).json()) as { result: string }).result;

  it('allows connect with the secret and own client id; denies otherwise; ignores non-devices', async () => {
    expect(await authn({ clientid: id, username: id, password: secret })).toEqual({
      result: 'allow',
      is_superuser: false,
    });
    // Asked for (kiot-auth asks; EMQX would hold it for the whole session), the allow carries the device's ACL.
    expect(await authn({ clientid: id, username: id, password: secret, with_acl: true })).toEqual({
      result: 'allow',
      is_superuser: false,
      acl: [{ permission: 'allow', action: 'all', topic: `devices/${id}/#` }],
    });
    // Twice: the second answer comes from the Redis cache and must agree.
    expect((await authn({ clientid: id, username: id, password: secret })).result).toBe('allow');
    expect((await authn({ clientid: id, username: id, password: `${secret}x` })).result).toBe('deny');
    expect((await authn({ clientid: `${id}-2`, username: id, password: secret })).result).toBe('deny');
    expect((await authn({ clientid: 'x', username: uniqueName('nobody'), password: 'p' })).result).toBe('ignore');
    expect((await authn({ clientid: 'bridge-0', username: '', password: '' })).result).toBe('ignore');
  });

  it('allows publish and subscribe only under devices/{id}/', async () => {
    const other = uniqueName('other');
    const cases: [string, string, string][] = [
      ['publish', `devices/${id}/telemetry`, 'allow'],
      ['subscribe', `devices/${id}/commands/#`, 'allow'],
      ['subscribe', `devices/${id}/+/desired`, 'allow'],
      ['publish', `devices/${other}/telemetry`, 'deny'],
      ['subscribe', `devices/${other}/#`, 'deny'],
      ['subscribe', 'devices/+/commands/#', 'deny'],
      ['subscribe', '#', 'deny'],
      ['publish', `devices/${id}/+`, 'deny'],
      ['subscribe', `$share/g/devices/${id}/#`, 'deny'],
      ['publish', `provisioning/${id}/request`, 'deny'],
    ];
    for (const [action, topic, expected] of cases)
      expect([action, topic, await authz({ clientid: id, username: id, topic, action })]).toEqual([
        action,
        topic,
        expected,
      ]);
    expect(
      await authz({ clientid: 'impostor', username: id, topic: `devices/${id}/telemetry`, action: 'publish' }),
    ).toBe('deny');
  });

  it('denies at once after rotation and disable (the cache entry is dropped)', async () => {
    expect((await authn({ clientid: id, username: id, password: secret })).result).toBe('allow');
    const rotated = await h.api(`/devices/${id}/credentials`, { method: 'POST' });
    const fresh = ((await rotated.json()) as { secret: string }).secret;
    expect((await authn({ clientid: id, username: id, password: secret })).result).toBe('deny');
    expect((await authn({ clientid: id, username: id, password: fresh })).result).toBe('allow');
    const current = (await (await h.api(`/devices/${id}`)).json()) as { version: number };
    expect(etag).toBe('"1"');
    await h.api(`/devices/${id}`, {
      method: 'PATCH',
      body: { status: 'disabled' },
      headers: { 'if-match': `"${current.version}"` },
    });
    expect((await authn({ clientid: id, username: id, password: fresh })).result).toBe('deny');
    expect(await authz({ clientid: id, username: id, topic: `devices/${id}/telemetry`, action: 'publish' })).toBe(
      'deny',
    );
  });

  it('sees a device registered after its absence was cached, and forgets a deleted one', async () => {
    const late = uniqueName('late');
    expect((await authn({ clientid: late, username: late, password: 'x' })).result).toBe('ignore');
    const created = (await (await h.api('/devices', { body: { id: late } })).json()) as { secret: string };
    expect((await authn({ clientid: late, username: late, password: created.secret })).result).toBe('allow');
    await h.api(`/devices/${late}`, { method: 'DELETE' });
    expect((await authn({ clientid: late, username: late, password: created.secret })).result).toBe('ignore');
  });

  it('sees devices registered in bulk after their absence was cached (one DEL per slot on a Cluster)', async () => {
    const late = namesOnDistinctShards('bulk-late', 3);
    for (const name of late)
      expect((await authn({ clientid: name, username: name, password: 'x' })).result).toBe('ignore');
    const response = await h.api('/devices/bulk', { body: { devices: late.map((name) => ({ id: name })) } });
    const { results } = (await response.json()) as { results: { id: string; status: string; secret: string }[] };
    expect(results.map((r) => [r.id, r.status])).toEqual(late.map((name) => [name, 'created']));
    for (const { id: name, secret: fresh } of results)
      expect([name, (await authn({ clientid: name, username: name, password: fresh })).result]).toEqual([
        name,
        'allow',
      ]);
  });

  it('rejects malformed hook requests with 400', async () => {
    expect(
      (
        await h.api('/broker/authz', {
          key: h.keys.hooks,
          body: { clientid: id, username: id, topic: 'x', action: 'delete' },
        })
      ).status,
    ).toBe(400);
  });
});
