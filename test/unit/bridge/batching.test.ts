import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type CloseReason, createBatcher } from '../../../bridge/batcher.js';
import { batchEventOf } from '../../../bridge/batches.js';
import { type InboundMessage, mapInboundMessage } from '../../../bridge/device-events.js';
import { singleEventOf, telemetryItemOf } from '../../../bridge/telemetry-items.js';
import { telemetryBatchItemSchema } from '../../../shared/telemetry-batch.js';

const options = { source: 'mqtt://broker:1883', maxPayloadBytes: 1024 };
const message = (topic: string, payload: string | Buffer, extra: Partial<InboundMessage> = {}): InboundMessage => ({
  topic,
  payload: Buffer.isBuffer(payload) ? payload : Buffer.from(payload),
  qos: 1,
  packetId: 7,
  sessionId: 'kiot-bridge-0-s1',
  receivedAt: new Date('2026-03-01T10:00:00.000Z'),
  ...extra,
});

describe('batcher: closes on count, size or linger, whichever first', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  function batcher(limits: { maxCount: number; maxBytes: number; lingerMs: number }) {
    const closed: { items: string[]; reason: CloseReason }[] = [];
    const b = createBatcher<string>({ ...limits, onClose: (items, reason) => closed.push({ items, reason }) });
    return { add: (item: string) => b.add(item, item.length), flush: b.flush, closed };
  }

  it('at the count', () => {
    const b = batcher({ maxCount: 3, maxBytes: 1000, lingerMs: 100 });
    for (const item of ['a', 'b', 'c', 'd']) b.add(item);
    expect(b.closed).toEqual([{ items: ['a', 'b', 'c'], reason: 'count' }]);
  });

  it('before the JSON array of the items would pass the size', () => {
    // [aaaa,bbbb] is 11 bytes; a third item of 4 would make 16.
    const b = batcher({ maxCount: 100, maxBytes: 15, lingerMs: 100 });
    for (const item of ['aaaa', 'bbbb', 'cccc']) b.add(item);
    expect(b.closed).toEqual([{ items: ['aaaa', 'bbbb'], reason: 'bytes' }]);
    b.flush();
    expect(b.closed[1]).toEqual({ items: ['cccc'], reason: 'flush' });
  });

  it('at the linger time after the first item, however few', () => {
    const b = batcher({ maxCount: 100, maxBytes: 1000, lingerMs: 100 });
    b.add('a');
    vi.advanceTimersByTime(60);
    b.add('b');
    vi.advanceTimersByTime(39);
    expect(b.closed).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(b.closed).toEqual([{ items: ['a', 'b'], reason: 'linger' }]);
    // The next item opens a new batch with its own linger.
    b.add('c');
    vi.advanceTimersByTime(100);
    expect(b.closed[1]).toEqual({ items: ['c'], reason: 'linger' });
  });

  it('a count of 1 sends every item alone', () => {
    const b = batcher({ maxCount: 1, maxBytes: 1000, lingerMs: 100 });
    b.add('a');
    b.add('b');
    expect(b.closed.map((c) => c.items)).toEqual([['a'], ['b']]);
  });
});

describe('telemetry items', () => {
  it('carry what the single event carries, the payload as sent', () => {
    const payload = '{ "metrics": {"t": 1.50}, "msgId": "m1", "ts": 5 }';
    const item = telemetryItemOf(message('devices/d1/telemetry', payload), options)!;
    const single = mapInboundMessage(message('devices/d1/telemetry', payload), options);
    expect(single.ok).toBe(true);
    const event = single.ok ? single.event : undefined;
    const parsed = telemetryBatchItemSchema.parse(JSON.parse(item.json));
    expect(parsed).toEqual({
      id: event!.id,
      subject: event!.subject,
      time: event!.time,
      datacontenttype: 'application/json',
      data: event!.data,
    });
    expect(item.json).toContain(payload);
    expect(item.bytes).toBe(Buffer.byteLength(item.json));
  });

  it('keep the session-and-packet id when there is no msgId, and drop a byte-order mark', () => {
    const payload = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"metrics":{"t":1}}')]);
    const item = telemetryItemOf(message('devices/d1/telemetry', payload), options)!;
    expect(item.id).toMatch(/^mqtt-[0-9a-f]{32}$/);
    expect(JSON.parse(item.json).data).toEqual({ metrics: { t: 1 } });
  });

  it('are only for plain telemetry that the bridge accepts: everything else travels alone', () => {
    expect(telemetryItemOf(message('devices/d1/state/reported', '{"a":1}'), options)).toBeUndefined();
    expect(telemetryItemOf(message('devices/d1/telemetry', 'not json'), options)).toBeUndefined();
    expect(telemetryItemOf(message('devices/d1/telemetry', '{"$set":{"a":1}}'), options)).toBeUndefined();
    expect(telemetryItemOf(message('devices/d1/telemetry', 'x'.repeat(2000)), options)).toBeUndefined();
    const cloudEvent = message('devices/d1/telemetry', '{"metrics":{"t":1}}', {
      properties: {
        userProperties: { specversion: '1.0', id: 'e1', source: '/d', type: 'io.kiot.telemetry.received' },
      },
    });
    expect(telemetryItemOf(cloudEvent, options)).toBeUndefined();
  });

  it('make a batch event whose id follows from its items, and single events again when needed', () => {
    const items = ['{"metrics":{"a":1}}', '{"metrics":{"b":2}}'].map(
      (payload, i) => telemetryItemOf(message(`devices/d${i}/telemetry`, payload, { packetId: i + 1 }), options)!,
    );
    const batch = batchEventOf(items, options.source);
    expect(batch).toMatchObject({ type: 'io.kiot.telemetry.batch', datacontenttype: 'application/json' });
    expect(JSON.parse(batch.data as string).map((item: { id: string }) => item.id)).toEqual(items.map((i) => i.id));
    expect(batchEventOf(items, options.source).id).toBe(batch.id);
    expect(batchEventOf([items[1]!, items[0]!], options.source).id).not.toBe(batch.id);
    expect(singleEventOf(items[0]!, options.source)).toMatchObject({
      id: items[0]!.id,
      type: 'io.kiot.telemetry.received',
      subject: 'd0',
      data: '{"metrics":{"a":1}}',
    });
  });
});
