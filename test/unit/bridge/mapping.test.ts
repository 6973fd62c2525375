import { CloudEvent, MQTT } from 'cloudevents';
import { describe, expect, it } from 'vitest';
import { type InboundMessage, mapInboundMessage } from '../../../bridge/device-events.js';
import { eventIdFor } from '../../../bridge/event-id.js';
import { findUnsafeJson, messageKeyOf, msgIdOf, parseStatus } from '../../../bridge/payload.js';
import { isValidPublishTopic, parseInboundTopic, replyTopicFor, subscriptionFilters } from '../../../bridge/topics.js';

const options = { source: 'mqtt://broker:1883', maxPayloadBytes: 1024 };
const at = new Date('2026-03-01T10:00:00.000Z');
const message = (topic: string, payload: string | Buffer, extra: Partial<InboundMessage> = {}): InboundMessage => ({
  topic,
  payload: Buffer.isBuffer(payload) ? payload : Buffer.from(payload),
  qos: 1,
  packetId: 7,
  sessionId: 'kiot-bridge-0-s1',
  receivedAt: at,
  ...extra,
});

describe('topic → event type', () => {
  it.each([
    ['devices/d1/telemetry', '{"metrics":{"t":1}}', 'io.kiot.telemetry.received', 'd1'],
    ['devices/d1/state/reported', '{"fw":"1"}', 'io.kiot.state.reported', 'd1'],
    ['devices/d1/status', 'online', 'io.kiot.device.connected', 'd1'],
    ['devices/d1/status', 'offline', 'io.kiot.device.disconnected', 'd1'],
    ['devices/d1/status', '{"status":"online"}', 'io.kiot.device.connected', 'd1'],
    ['devices/d1/commands/c1/ack', '{"status":"accepted"}', 'io.kiot.command.acknowledged', 'd1'],
    ['provisioning/r-1/request', '{"claimToken":"x"}', 'io.kiot.provisioning.requested', 'r-1'],
  ])('%s (%s) → %s', (topic, payload, type, subject) => {
    const mapped = mapInboundMessage(message(topic, payload), options);
    expect(mapped.ok && mapped.event).toMatchObject({
      type,
      subject,
      source: options.source,
      time: at.toISOString(),
      datacontenttype: 'application/json',
    });
  });

  it('puts the command id in an extension and in the data', () => {
    const mapped = mapInboundMessage(
      message('devices/d1/commands/c-42/ack', '{"status":"failed","error":"x"}'),
      options,
    );
    expect(mapped.ok && mapped.event).toMatchObject({
      commandid: 'c-42',
      data: { status: 'failed', error: 'x', commandId: 'c-42' },
    });
  });

  it.each([
    ['devices/d1/unknown', 'topic_outside_scheme'],
    ['devices//telemetry', 'topic_outside_scheme'],
    ['devices/a b/telemetry', 'topic_outside_scheme'],
    ['devices/d1/commands//ack', 'topic_outside_scheme'],
    ['other/d1/telemetry', 'topic_outside_scheme'],
  ])('refuses %s', (topic, code) => {
    const mapped = mapInboundMessage(message(topic, '{}'), options);
    expect(!mapped.ok && mapped.rejection.code).toBe(code);
  });

  it('names where the sender hears about a refusal', () => {
    expect(replyTopicFor('devices/d1/telemetry')).toBe('devices/d1/errors');
    expect(replyTopicFor('devices//telemetry')).toBe('devices//errors');
    expect(replyTopicFor('provisioning/r1/request')).toBe('provisioning/r1/response');
    expect(replyTopicFor('x')).toBeUndefined();
    expect(parseInboundTopic('devices/d1/commands/c1/ack')).toEqual({
      ok: true,
      value: { kind: 'ack', subject: 'd1', deviceId: 'd1', commandId: 'c1' },
    });
    expect(subscriptionFilters('g')).toContain('$share/g/devices/+/commands/+/ack');
  });
});

describe('payload checks', () => {
  it.each([
    ['not json', 'invalid_json'],
    ['42', 'invalid_payload'],
    ['[]', 'invalid_payload'],
    ['{"a":{"b":[{"$set":1}]}}', 'forbidden_key'],
  ])('refuses telemetry %s with %s', (payload, code) => {
    const mapped = mapInboundMessage(message('devices/d1/telemetry', payload), options);
    expect(!mapped.ok && mapped.rejection).toMatchObject({ code, replyTopic: 'devices/d1/errors', subject: 'd1' });
  });

  it('refuses an oversize payload before reading it', () => {
    const mapped = mapInboundMessage(message('devices/d1/telemetry', Buffer.alloc(1025, 0x20)), options);
    expect(!mapped.ok && mapped.rejection.code).toBe('payload_too_large');
  });

  it('finds $ keys at any depth and stops at a depth limit', () => {
    expect(findUnsafeJson({ a: [{ b: { c: 1 } }] }).ok).toBe(true);
    expect(findUnsafeJson({ a: [{ b: { $gt: 1 } }] })).toMatchObject({
      ok: false,
      code: 'forbidden_key',
      message: expect.stringContaining('a[0].b.$gt'),
    });
    expect(findUnsafeJson({ a$: 1, b: 'x$' }).ok).toBe(true);
    let deep: unknown = 1;
    for (let i = 0; i < 100; i += 1) deep = [deep];
    expect(findUnsafeJson(deep)).toMatchObject({ ok: false, code: 'too_deep' });
  });

  it.each([
    ['{"s":{"t":1e999}}', 'non_finite_number', 's.t'],
    ['{"a":[1,-1e400]}', 'non_finite_number', 'a[1]'],
    ['{"a":{"__proto__":{"x":1}}}', 'prototype_key', 'a.__proto__'],
    ['{"constructor":1}', 'prototype_key', 'constructor'],
    ['{"prototype":{}}', 'prototype_key', 'prototype'],
    ['{"s":"\\ud800"}', 'invalid_unicode', 's'],
    ['{"\\udc00":1}', 'invalid_unicode', ''],
  ])('refuses %s, which would not come back unchanged: %s', (text, code, path) => {
    expect(findUnsafeJson(JSON.parse(text))).toMatchObject({ ok: false, code, message: expect.stringContaining(path) });
    const mapped = mapInboundMessage(message('devices/d1/state/reported', text), options);
    expect(!mapped.ok && mapped.rejection).toMatchObject({ code, replyTopic: 'devices/d1/errors' });
  });

  it('accepts what round-trips: -0, huge finite numbers, astral characters, keys like proto', () => {
    expect(findUnsafeJson(JSON.parse('{"a":-0,"b":1.7e308,"c":"\\ud83d\\ude00","proto":1,"Constructor":2}')).ok).toBe(
      true,
    );
  });

  it('reads msgId from an object or from every element of a batch', () => {
    expect(msgIdOf({ msgId: 'a' })).toBe('a');
    expect(msgIdOf([{ msgId: 'a' }, { msgId: 'b' }])).toBe('a,b');
    expect(msgIdOf([{ msgId: 'a' }, {}])).toBeUndefined();
    expect(msgIdOf({ msgId: 5 })).toBeUndefined();
    expect(msgIdOf(Array.from({ length: 50 }, (_, i) => ({ msgId: `message-${i}` })))).toMatch(/^batch-[0-9a-f]{32}$/);
    expect(parseStatus(Buffer.from(' ONLINE\n'))).toEqual({ ok: true, value: 'online' });
    expect(parseStatus(Buffer.from('')).ok).toBe(false);
  });
});

describe('event id', () => {
  const base = {
    subject: 'd1',
    sessionId: 's-0',
    packetId: 9,
    topic: 'devices/d1/telemetry',
    payload: Buffer.from('{"a":1}'),
  };

  it('is the same for a redelivery (same session, packet id, topic, payload) and differs otherwise', () => {
    expect(eventIdFor(base)).toBe(eventIdFor({ ...base, payload: Buffer.from('{"a":1}') }));
    expect(eventIdFor(base)).toMatch(/^mqtt-[0-9a-f]{32}$/);
    for (const change of [
      { sessionId: 's-1' },
      { packetId: 10 },
      { topic: 'devices/d1/state/reported' },
      { payload: Buffer.from('{"a":2}') },
    ]) {
      expect(eventIdFor({ ...base, ...change })).not.toBe(eventIdFor(base));
    }
  });

  it('is `{deviceId}:{msgId}@{ts}` when the device names and times its message, whatever the session', () => {
    expect(eventIdFor({ ...base, msgId: 'm1@5' })).toBe('d1:m1@5');
    const named = '{"metrics":{"t":1},"msgId":"m1","ts":"2026-01-01T00:00:00Z"}';
    const mapped = mapInboundMessage(message('devices/d9/telemetry', named), options);
    expect(mapped.ok && mapped.event.id).toBe('d9:m1@2026-01-01T00:00:00Z');
  });

  it('never takes a rebooted device’s restarted counter for a redelivery: msgId is scoped by ts', () => {
    const before = mapInboundMessage(
      message('devices/d9/telemetry', '{"metrics":{"t":1},"msgId":"1","ts":1000}'),
      options,
    );
    const rebooted = mapInboundMessage(
      message('devices/d9/telemetry', '{"metrics":{"t":1},"msgId":"1","ts":9000}'),
      options,
    );
    expect(before.ok && rebooted.ok && before.event.id !== rebooted.event.id).toBe(true);
    // Without ts a msgId names nothing: the delivery identity (session, packet id, payload) is the id.
    const untimed = mapInboundMessage(message('devices/d9/telemetry', '{"metrics":{"t":1},"msgId":"1"}'), options);
    expect(untimed.ok && untimed.event.id).toMatch(/^mqtt-[0-9a-f]{32}$/);
  });

  it('scopes every sample of a batch, and needs a ts on each', () => {
    expect(
      messageKeyOf([
        { msgId: 'a', ts: 1 },
        { msgId: 'b', ts: '2026-01-01T00:00:00Z' },
      ]),
    ).toBe('a@1,b@2026-01-01T00:00:00Z');
    expect(messageKeyOf([{ msgId: 'a', ts: 1 }, { msgId: 'b' }])).toBeUndefined();
    expect(messageKeyOf({ msgId: 'a', ts: { x: 1 } })).toBeUndefined();
    expect(messageKeyOf(Array.from({ length: 50 }, (_, i) => ({ msgId: `m-${i}`, ts: i })))).toMatch(
      /^batch-[0-9a-f]{32}$/,
    );
  });

  it('is unique for QoS 0, which is never redelivered', () => {
    const { packetId: _ignored, ...qos0 } = base;
    expect(eventIdFor(qos0)).not.toBe(eventIdFor(qos0));
  });
});

describe('CloudEvents sent by devices over MQTT 5', () => {
  const sent = new CloudEvent({
    id: 'dev-event-1',
    source: 'urn:dev',
    type: 'io.kiot.telemetry.received',
    subject: 'spoofed',
    datacontenttype: 'application/json',
    data: { metrics: { t: 3 } },
    region: 'eu',
  });

  it('reads binary mode: attributes from user properties', () => {
    const binary = MQTT.binary(sent);
    const userProperties = Object.fromEntries(
      Object.entries(binary.headers).flatMap(([k, v]) => (v === undefined ? [] : [[k, String(v)]])),
    );
    const mapped = mapInboundMessage(
      message('devices/d1/telemetry', JSON.stringify(binary.body), {
        properties: { contentType: 'application/json', userProperties },
      }),
      options,
    );
    expect(mapped.ok && mapped.event).toMatchObject({
      id: 'dev-event-1',
      subject: 'd1',
      source: options.source,
      region: 'eu',
      devicesource: 'urn:dev',
      data: { metrics: { t: 3 } },
    });
  });

  it('reads structured mode, and refuses a type the topic does not carry or non-JSON data', () => {
    const structured = { properties: { contentType: 'application/cloudevents+json' } };
    const ok = mapInboundMessage(message('devices/d1/telemetry', JSON.stringify(sent.toJSON()), structured), options);
    expect(ok.ok && ok.event).toMatchObject({ id: 'dev-event-1', subject: 'd1', time: sent.time });
    const wrongType = mapInboundMessage(
      message('devices/d1/state/reported', JSON.stringify(sent.toJSON()), structured),
      options,
    );
    expect(!wrongType.ok && wrongType.rejection.code).toBe('type_not_allowed');
    const dollar = mapInboundMessage(
      message('devices/d1/telemetry', JSON.stringify({ ...sent.toJSON(), data: { $x: 1 } }), structured),
      options,
    );
    expect(!dollar.ok && dollar.rejection.code).toBe('forbidden_key');
    const binaryXml = mapInboundMessage(
      message('devices/d1/telemetry', '<a/>', {
        properties: {
          contentType: 'application/xml',
          userProperties: { specversion: '1.0', id: 'x', source: 's', type: 'io.kiot.telemetry.received' },
        },
      }),
      options,
    );
    expect(!binaryXml.ok && binaryXml.rejection.code).toBe('unsupported_content_type');
  });

  it('refuses an invalid extension name instead of throwing', () => {
    const mapped = mapInboundMessage(
      message('devices/d1/telemetry', '{"metrics":{}}', {
        properties: {
          userProperties: {
            specversion: '1.0',
            id: 'x',
            source: 's',
            type: 'io.kiot.telemetry.received',
            'Bad-Name': 'v',
          },
        },
      }),
      options,
    );
    expect(!mapped.ok && mapped.rejection.code).toBe('invalid_cloudevent');
  });
});

describe('publish topics', () => {
  it.each([
    ['devices/d1/commands/c1', true],
    ['devices/+/x', false],
    ['devices/#', false],
    ['$SYS/x', false],
    ['', false],
    ['a\u0000b', false],
  ])('%s → %s', (topic, valid) => expect(isValidPublishTopic(topic)).toBe(valid));
});
