import { describe, expect, it } from 'vitest';
import {
  CloudEvent,
  isCloudEventRequest,
  parseCloudEvent,
  toBinaryMessage,
  toStructuredMessage,
} from '../../shared/cloudevents.js';
import { InvalidInputError } from '../../shared/errors.js';
import { backoffDelayMs, deliveryVerdict } from '../../shared/event-transport.js';

const binaryHeaders = {
  'ce-id': 'e-1',
  'ce-source': '/kiot/test',
  'ce-type': 'io.kiot.telemetry.received',
  'ce-specversion': '1.0',
  'ce-subject': 'dev-1',
  'content-type': 'application/json',
};

describe('parseCloudEvent', () => {
  it('reads binary mode', () => {
    const event = parseCloudEvent(binaryHeaders, Buffer.from('{"metrics":{"t":1}}'));
    expect(event).toMatchObject({ id: 'e-1', subject: 'dev-1', data: { metrics: { t: 1 } } });
  });

  it('reads structured mode', () => {
    const body = JSON.stringify({ id: 'e-2', source: '/s', type: 't', specversion: '1.0', data: { a: 1 } });
    const event = parseCloudEvent({ 'content-type': 'application/cloudevents+json; charset=utf-8' }, body);
    expect(event).toMatchObject({ id: 'e-2', data: { a: 1 } });
  });

  it('takes a body the server parsed already as it is, in both modes (parsed once)', () => {
    const raw = '[{"id":"a","subject":"d1"}]';
    const value = JSON.parse(raw) as unknown[];
    // A fixed time: without one each parse stamps "now", and two parses a millisecond apart differ.
    const headers = { ...binaryHeaders, 'ce-time': '2026-01-01T00:00:00.000Z' };
    const binary = parseCloudEvent(headers, Buffer.from(raw), { value });
    expect(binary.data).toBe(value);
    expect(binary).toEqual(parseCloudEvent(headers, Buffer.from(raw)));
    const envelope = { id: 'e-3', source: '/s', type: 't', specversion: '1.0', data: { a: 1 } };
    const structured = parseCloudEvent({ 'content-type': 'application/cloudevents+json' }, JSON.stringify(envelope), {
      value: envelope,
    });
    expect(structured).toMatchObject({ id: 'e-3', data: { a: 1 } });
    expect(() =>
      parseCloudEvent({ 'content-type': 'application/cloudevents+json' }, '{}', { value: { id: 'x' } }),
    ).toThrow(/source/);
  });

  it.each(['id', 'source', 'type', 'specversion'])('rejects a binary envelope without %s with 400', (name) => {
    const headers: Record<string, string> = { ...binaryHeaders };
    delete headers[`ce-${name}`];
    if (name === 'specversion') headers['ce-id'] = 'x';
    const attempt = () => parseCloudEvent(headers, '{}');
    expect(attempt).toThrow(InvalidInputError);
    expect(attempt).toThrow(new RegExp(name));
  });

  it('rejects a structured envelope without id, and one that is not JSON', () => {
    const headers = { 'content-type': 'application/cloudevents+json' };
    expect(() => parseCloudEvent(headers, JSON.stringify({ source: '/s', type: 't', specversion: '1.0' }))).toThrow(
      /id/,
    );
    expect(() => parseCloudEvent(headers, '{not json')).toThrow(InvalidInputError);
  });

  it('round-trips through binary and structured messages', () => {
    const event = new CloudEvent({ id: 'x', source: '/a', type: 'b', subject: 's', data: { n: 1 }, kiotextra: 'v' });
    for (const message of [toBinaryMessage(event), toStructuredMessage(event)]) {
      expect(isCloudEventRequest(message.headers)).toBe(true);
      expect(parseCloudEvent(message.headers, message.body)).toMatchObject({
        id: 'x',
        subject: 's',
        data: { n: 1 },
        kiotextra: 'v',
      });
    }
  });

  it('keeps binary data as bytes in binary mode', () => {
    const bytes = Buffer.from([0x00, 0xff, 0xfe, 0x80, 0x41]);
    const event = new CloudEvent({
      id: 'b',
      source: '/a',
      type: 'b',
      datacontenttype: 'application/octet-stream',
      data: bytes,
    });
    const message = toBinaryMessage(event);
    expect(Buffer.isBuffer(message.body)).toBe(true);
    expect(Buffer.compare(message.body as Buffer, bytes)).toBe(0);
    const parsed = parseCloudEvent(message.headers, message.body);
    expect(Buffer.from(parsed.data as Uint8Array).equals(bytes)).toBe(true);
  });

  it('captures no stack while the SDK runs, and leaves the limit as it was (also when the SDK refuses)', () => {
    const limit = Error.stackTraceLimit;
    parseCloudEvent(binaryHeaders, Buffer.from('{"metrics":{"t":1}}'));
    expect(Error.stackTraceLimit).toBe(limit);
    // Binary mode whose JSON the SDK cannot parse: its refusal, worded by its message.
    let refusal: unknown;
    try {
      parseCloudEvent(binaryHeaders, Buffer.from('{not json'));
    } catch (error) {
      refusal = error;
    }
    expect(Error.stackTraceLimit).toBe(limit);
    expect(refusal).toBeInstanceOf(InvalidInputError);
    expect((refusal as Error).message).toMatch(/the CloudEvent is invalid: .*JSON/);
    // The 400 itself keeps its stack: it is built after the limit is back.
    expect((refusal as Error).stack).toMatch(/\n\s+at /);
  });

  it('knows a plain JSON request is not a CloudEvent', () => {
    expect(isCloudEventRequest({ 'content-type': 'application/json' })).toBe(false);
  });
});

describe('delivery rules', () => {
  it.each([
    [202, 'delivered'],
    [204, 'delivered'],
    [400, 'permanent'],
    [422, 'permanent'],
    [404, 'retry'],
    [429, 'retry'],
    [503, 'retry'],
  ] as const)('%i → %s', (status, verdict) => expect(deliveryVerdict(status)).toBe(verdict));

  it('computes Knative backoff: exponential delay*2^n, linear delay*n, capped', () => {
    expect([1, 2, 3].map((n) => backoffDelayMs({ policy: 'exponential', baseMs: 100 }, n))).toEqual([200, 400, 800]);
    expect([1, 2, 3].map((n) => backoffDelayMs({ policy: 'linear', baseMs: 100 }, n))).toEqual([100, 200, 300]);
    expect(backoffDelayMs({ policy: 'exponential', baseMs: 100, maxMs: 300 }, 5)).toBe(300);
    const jittered = backoffDelayMs({ policy: 'exponential', baseMs: 100, jitter: true }, 2, () => 0);
    expect(jittered).toBe(200);
  });
});
