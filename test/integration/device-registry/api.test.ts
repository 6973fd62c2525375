import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueName } from '../../support/services.js';
import { type Harness, startHarness } from './harness.js';

// The HTTP API over real HTTP: validation, conflicts, concurrency, keys, bulk, pagination, OpenAPI.
describe('device-registry HTTP API', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => h?.close());

  const expectProblem = async (response: Response, status: number, code?: string) => {
    expect(response.status).toBe(status);
    const body = (await response.json()) as { error: { code: string; message: string } };
    expect(body.error.message).toEqual(expect.any(String));
    if (code) expect(body.error.code).toBe(code);
    return body;
  };

  it('rejects bad ids, $ or dotted metadata keys, oversize metadata and unknown fields with 400 problems', async () => {
    const cases: unknown[] = [
      { id: 'bad/id' },
      { id: 'a+b' },
      { id: 'x'.repeat(65) },
      { metadata: { $where: 1 } },
      { metadata: { 'a.b': 1 } },
      { metadata: { nested: { deeper: [{ $set: 1 }] } } },
      { metadata: { blob: 'x'.repeat(9_000) } },
      { name: 'ok', colour: 'red' },
      { tags: ['dup', 'dup'] },
    ];
    for (const body of cases) await expectProblem(await h.api('/devices', { body }), 400, 'invalid_input');
    await expectProblem(await h.api('/devices', { body: '{"id":' }), 400);
    await expectProblem(
      await h.api('/devices', { body: { metadata: { pad: 'x'.repeat(1_100_000) } } }),
      413,
      'payload_too_large',
    );
  });

  it('answers 409 for a duplicate id and shows the secret only at registration', async () => {
    const id = uniqueName('dup');
    const first = await h.api('/devices', {
      body: { id, name: 'one', type: 'thermo', tags: ['a'], metadata: { site: { room: 4 } } },
    });
    expect(first.status).toBe(201);
    const created = (await first.json()) as { device: Record<string, unknown>; secret: string };
    expect(created.secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(created.device).toMatchObject({
      id,
      name: 'one',
      type: 'thermo',
      tags: ['a'],
      metadata: { site: { room: 4 } },
      status: 'active',
      version: 1,
    });
    await expectProblem(await h.api('/devices', { body: { id } }), 409, 'device_exists');
    const read = await h.api(`/devices/${id}`);
    expect(read.headers.get('etag')).toBe('"1"');
    const text = await read.text();
    expect(text).not.toContain(created.secret);
    expect(text).not.toContain('scrypt');
  });

  it('updates with If-Match: 428 without, 412 on a stale version, 200 with the current one', async () => {
    const id = uniqueName('patch');
    await h.api('/devices', { body: { id } });
    const patch = (headers: Record<string, string>, body: unknown = { name: 'renamed' }) =>
      h.api(`/devices/${id}`, { method: 'PATCH', body, headers });
    await expectProblem(await patch({}), 428, 'precondition_required');
    const ok = await patch({ 'if-match': '"1"' });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('etag')).toBe('"2"');
    expect(await ok.json()).toMatchObject({ name: 'renamed', version: 2 });
    await expectProblem(await patch({ 'if-match': '"1"' }, { tags: ['x'] }), 412, 'precondition_failed');
    await expectProblem(await patch({ 'if-match': '"2"' }, { owner: 'me' }), 400);
    await expectProblem(
      await h.api('/devices/nope-nope', { method: 'PATCH', body: { name: 'x' }, headers: { 'if-match': '"1"' } }),
      404,
    );
  });

  it('answers 401 without a valid key and 403 without the scope', async () => {
    await expectProblem(await h.api('/devices', { key: null }), 401, 'unauthorized');
    await expectProblem(await h.api('/devices', { key: `${h.keys.admin}x` }), 401, 'unauthorized');
    expect((await h.api('/devices?limit=1', { key: h.keys.reader })).status).toBe(200);
    await expectProblem(await h.api('/devices', { key: h.keys.reader, body: {} }), 403, 'forbidden');
    await expectProblem(
      await h.api('/broker/authn', { key: h.keys.reader, body: { clientid: 'a', username: 'a', password: 'b' } }),
      403,
    );
    // Before the body is looked at: a key without the scope learns nothing about validation.
    await expectProblem(await h.api('/devices', { key: h.keys.reader, body: { id: 'bad/id' } }), 403);
  });

  it('bulk-registers exactly the valid, new devices with a result per item', async () => {
    const taken = uniqueName('taken');
    await h.api('/devices', { body: { id: taken } });
    const fresh = [uniqueName('b1'), uniqueName('b2'), uniqueName('b3')];
    const response = await h.api('/devices/bulk', {
      body: {
        devices: [
          { id: fresh[0] },
          { id: taken },
          { id: 'bad id' },
          { id: fresh[1], metadata: { $x: 1 } },
          { id: fresh[2] },
          { id: fresh[0] },
          { name: 'generated' },
        ],
      },
    });
    expect(response.status).toBe(200);
    const body = (await response.json()) as {
      created: number;
      results: { index: number; status: string; id?: string; secret?: string }[];
    };
    expect(body.results.map((r) => r.status)).toEqual([
      'created',
      'conflict',
      'invalid',
      'invalid',
      'created',
      'conflict',
      'created',
    ]);
    expect(body.created).toBe(3);
    for (const r of body.results.filter((x) => x.status === 'created')) {
      expect(r.secret).toEqual(expect.any(String));
      expect((await h.api(`/devices/${r.id}`)).status).toBe(200);
    }
    expect((await h.api(`/devices/${fresh[1]}`)).status).toBe(404);
    await expectProblem(
      await h.api('/devices/bulk', { body: { devices: Array.from({ length: 1_001 }, () => ({})) } }),
      400,
    );
  });

  it('pages with a cursor that stays stable while devices are added', async () => {
    const tag = `page-${Date.now().toString(36)}`;
    const ids = Array.from({ length: 7 }, (_, i) => `${tag}-${String(i * 2).padStart(2, '0')}`);
    await h.api('/devices/bulk', { body: { devices: ids.map((id) => ({ id, tags: [tag] })) } });
    const seen: string[] = [];
    let cursor: string | undefined;
    let round = 0;
    do {
      const page = (await (await h.api(`/devices?tag=${tag}&limit=3${cursor ? `&cursor=${cursor}` : ''}`)).json()) as {
        items: { id: string }[];
        nextCursor?: string;
      };
      seen.push(...page.items.map((d) => d.id));
      cursor = page.nextCursor;
      // Insert devices before and after the read position between pages.
      if (round++ === 0)
        await h.api('/devices/bulk', {
          body: {
            devices: [
              { id: `${tag}-01`, tags: [tag] },
              { id: `${tag}-99`, tags: [tag] },
            ],
          },
        });
    } while (cursor);
    // Nothing seen twice, nothing skipped; an id added behind the cursor is not seen, one ahead of it is.
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toEqual([...ids, `${tag}-99`]);
    await expectProblem(await h.api('/devices?cursor=!!'), 400);
    await expectProblem(await h.api('/devices?limit=0'), 400);
    // One value given twice is refused, not read as its last.
    await expectProblem(await h.api('/devices?limit=5&limit=7'), 400);
    const disabled = (await (await h.api(`/devices?tag=${tag}&status=disabled`)).json()) as { items: unknown[] };
    expect(disabled.items).toEqual([]);
  });

  it('searches by id prefix and by a list of ids, pages within the search, and refuses a bad one', async () => {
    const tag = `search-${Date.now().toString(36)}`;
    const ids = ['a1', 'a2', 'a3', 'ab', 'b1'].map((suffix) => `${tag}-${suffix}`);
    await h.api('/devices/bulk', { body: { devices: ids.map((id) => ({ id, tags: [tag] })) } });
    type Page = { items: { id: string }[]; nextCursor?: string };
    const first = (await (await h.api(`/devices?idPrefix=${tag}-a&limit=2`)).json()) as Page;
    expect(first.items.map((d) => d.id)).toEqual([`${tag}-a1`, `${tag}-a2`]);
    const second = (await (
      await h.api(`/devices?idPrefix=${tag}-a&limit=2&cursor=${first.nextCursor}`)
    ).json()) as Page;
    expect(second.items.map((d) => d.id)).toEqual([`${tag}-a3`, `${tag}-ab`]);
    expect(second.nextCursor).toBeUndefined();
    const listed = (await (await h.api(`/devices?ids=${tag}-b1,${tag}-a2,${tag}-zz`)).json()) as Page;
    expect(listed.items.map((d) => d.id)).toEqual([`${tag}-a2`, `${tag}-b1`]);
    await expectProblem(await h.api('/devices?idPrefix=a$'), 400);
    await expectProblem(await h.api(`/devices?ids=${Array.from({ length: 101 }, (_, i) => `x${i}`).join(',')}`), 400);
  });

  it('counts the fleet by status and type (GET /device-summary)', async () => {
    type Summary = {
      total: number;
      byStatus: { active: number; disabled: number };
      byType: { type: string | null; devices: number }[];
    };
    const before = (await (await h.api('/device-summary')).json()) as Summary;
    const type = `sum${Date.now().toString(36)}`;
    const ids = [1, 2, 3].map((n) => `${type}-${n}`);
    await h.api('/devices/bulk', {
      body: { devices: ids.map((id, n) => ({ id, type, status: n === 0 ? 'disabled' : 'active' })) },
    });
    const after = (await (await h.api('/device-summary')).json()) as Summary;
    expect(after.total - before.total).toBe(3);
    expect(after.byStatus.active - before.byStatus.active).toBe(2);
    expect(after.byStatus.disabled - before.byStatus.disabled).toBe(1);
    expect(after.byType).toContainEqual({ type, devices: 3 });
    expect(after.byType.reduce((sum, entry) => sum + entry.devices, 0)).toBe(after.total);
  });

  it('stores and serves device types for telemetry-ingest', async () => {
    const type = uniqueName('type');
    const put = await h.api(`/device-types/${type}`, {
      method: 'PUT',
      body: { telemetrySchema: { metrics: { t: { unit: 'C', min: -40, max: 85 } } } },
    });
    expect(put.status).toBe(200);
    expect(await (await h.api(`/device-types/${type}`, { key: h.keys.reader })).json()).toMatchObject({
      type,
      version: 1,
      telemetrySchema: { metrics: { t: { unit: 'C' } }, allowUnknownMetrics: false },
    });
    await expectProblem(
      await h.api(`/device-types/${type}`, { method: 'PUT', body: { telemetrySchema: { metrics: { 'a.b': {} } } } }),
      400,
    );
    await expectProblem(await h.api(`/device-types/${uniqueName('none')}`), 404);
  });

  it('serves an OpenAPI 3.1 document generated from the schemas, without a key', async () => {
    const response = await h.api('/openapi.json', { key: null });
    expect(response.status).toBe(200);
    const doc = (await response.json()) as { openapi: string; paths: Record<string, Record<string, any>> };
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/devices',
        '/devices/{id}',
        '/devices/bulk',
        '/devices/{id}/credentials',
        '/provisioning-tokens',
        '/device-types/{type}',
        '/device-summary',
      ]),
    );
    const register = doc.paths['/devices']!.post.requestBody.content['application/json'].schema;
    expect(register.additionalProperties).toBe(false);
    expect(register.properties.id.pattern).toBe('^[A-Za-z0-9._-]{1,64}$');
  });
});
