import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueName } from '../../support/services.js';
import { type Harness, startHarness, storedSamples } from './harness.js';

// Devices without MQTT post telemetry with their own credential, through the same path.
describe('telemetry-ingest: HTTP ingest with device credentials', () => {
  let h: Harness;
  const device = uniqueName('http-dev');
  const secret = 'correct-horse-battery-staple-0123456789';

  beforeAll(async () => {
    h = await startHarness({ RATE_LIMIT_PER_SECOND: '0.001', RATE_LIMIT_BURST: '4' });
    await h.addDevice(device, { secret });
  });
  afterAll(() => h.close());

  const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  const post = (body: unknown, headers: Record<string, string>, target = device) =>
    fetch(`${h.base}/devices/${target}/telemetry`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });

  it('stores telemetry posted with the valid credential, once per Idempotency-Key', async () => {
    const first = await post([{ metrics: { t: 1 } }, { metrics: { t: 2 } }], {
      authorization: basic(device, secret),
      'idempotency-key': 'k-1',
    });
    expect(first.status).toBe(200);
    expect(await first.json()).toMatchObject({ outcome: 'stored', samples: 2, eventId: `http:${device}:k-1` });
    const again = await post([{ metrics: { t: 1 } }, { metrics: { t: 2 } }], {
      authorization: basic(device, secret),
      'idempotency-key': 'k-1',
    });
    expect(await again.json()).toMatchObject({ outcome: 'duplicate' });
    // The key as a structured-field string (quoted) is the same key.
    const quoted = await post([{ metrics: { t: 1 } }, { metrics: { t: 2 } }], {
      authorization: basic(device, secret),
      'idempotency-key': '"k-1"',
    });
    expect(await quoted.json()).toMatchObject({ outcome: 'duplicate', eventId: `http:${device}:k-1` });
    expect(await storedSamples(h, device)).toHaveLength(2);
    const malformed = await post(
      { metrics: { t: 9 } },
      { authorization: basic(device, secret), 'idempotency-key': 'has space' },
    );
    expect(malformed.status).toBe(400);
    expect(await storedSamples(h, device)).toHaveLength(2);
  });

  it('answers 401 with a Basic challenge for a wrong or missing credential, or another device', async () => {
    const other = uniqueName('http-dev');
    await h.addDevice(other, { secret: 'other-secret-0123456789abcdef' });
    const answers = [
      await post({ metrics: { t: 3 } }, { authorization: basic(device, 'wrong') }),
      await post({ metrics: { t: 3 } }, {}),
      await post({ metrics: { t: 3 } }, { authorization: h.apiKey }),
      await post({ metrics: { t: 3 } }, { authorization: basic(other, 'other-secret-0123456789abcdef') }),
    ];
    for (const answer of answers) {
      expect(answer.status).toBe(401);
      expect(answer.headers.get('www-authenticate')).toMatch(/^Basic/);
    }
    expect(await storedSamples(h, device)).toHaveLength(2);
  });

  it('applies the same validation (400) and rate limit (429 with Retry-After over HTTP)', async () => {
    const auth = { authorization: basic(device, secret) };
    const invalid = await post({ metrics: { t: 'hot' } }, auth);
    expect(invalid.status).toBe(400);
    expect(await invalid.json()).toMatchObject({ error: { code: 'invalid_payload' } });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i += 1) statuses.push((await post({ metrics: { t: i } }, auth)).status);
    expect(statuses).toContain(429);
    const limited = await post({ metrics: { t: 9 } }, auth);
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
  });

  it('takes a batch (a JSON array of messages) with a result per message, rate limited per message', async () => {
    const batchDevice = uniqueName('http-dev');
    await h.addDevice(batchDevice, { secret });
    const postBatch = (body: unknown, key?: string) =>
      fetch(`${h.base}/devices/${batchDevice}/telemetry/batch`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: basic(batchDevice, secret),
          ...(key ? { 'idempotency-key': key } : {}),
        },
        body: JSON.stringify(body),
      });
    const messages = [
      { metrics: { t: 0 } },
      { metrics: { t: 'hot' } },
      [{ metrics: { t: 2 } }, { metrics: { t: 2.5 } }],
      { metrics: { t: 3 } },
      { metrics: { t: 4 } },
      { metrics: { t: 5 } },
    ];
    const answer = await postBatch(messages, 'b-1');
    expect(answer.status).toBe(200);
    const body = (await answer.json()) as { items: { outcome: string; status: number; error?: { code: string } }[] };
    // A burst of 4: the first four are admitted (one of them is invalid), the last two are over the rate.
    expect(body).toMatchObject({ stored: 3, duplicates: 0, refused: 3 });
    expect(body.items.map((item) => [item.outcome, item.status, item.error?.code])).toEqual([
      ['stored', 200, undefined],
      ['refused', 400, 'invalid_payload'],
      ['stored', 200, undefined],
      ['stored', 200, undefined],
      ['refused', 429, 'rate_limited'],
      ['refused', 429, 'rate_limited'],
    ]);
    expect(body.items[0]).toMatchObject({ index: 0, eventId: `http-batch:${batchDevice}:0:b-1`, samples: 1 });
    expect(await storedSamples(h, batchDevice)).toHaveLength(4);
    // The same batch again (a client retry with its key): what was stored is a duplicate, nothing twice.
    const again = (await (await postBatch(messages, 'b-1')).json()) as { stored: number; duplicates: number };
    expect(again).toMatchObject({ stored: 0, duplicates: 3 });
    expect(await storedSamples(h, batchDevice)).toHaveLength(4);
    expect((await postBatch([], 'b-2')).status).toBe(400);
    expect((await postBatch({ metrics: { t: 1 } }, 'b-3')).status).toBe(400);
  });
});
