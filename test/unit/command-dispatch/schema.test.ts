import { describe, expect, it } from 'vitest';
import { decodeCursor, encodeCursor } from '../../../functions/command-dispatch/command-repository.js';
import { toView } from '../../../functions/command-dispatch/command-view.js';
import { commandDispatchConfigSchema } from '../../../functions/command-dispatch/config.js';
import {
  ackEventDataSchema,
  ackOf,
  createCommandBodySchema,
  listQuerySchema,
} from '../../../functions/command-dispatch/schema.js';
import { ConfigError, loadConfig } from '../../../shared/config.js';

describe('command-dispatch contracts', () => {
  it.each([
    [{ name: 'reboot' }, true],
    [{ name: 'set', params: { a: [1, 2] }, ttlSeconds: 60, timeoutSeconds: 5, wait: true }, true],
    [{ name: 'x', wait: 300 }, true],
    [{ name: 'x', wait: 301 }, false],
    [{ name: 'x', ttlSeconds: 0 }, false],
    [{ name: 'bad/name' }, false],
    [{ name: 'x', unknown: 1 }, false],
    [{}, false],
  ])('command body %j valid: %s', (body, valid) => {
    expect(createCommandBodySchema.safeParse(body).success).toBe(valid);
  });

  it('reads the command id of an ack from data, else the topic, and the device from data, topic or subject', () => {
    const fromData = ackEventDataSchema.parse({ status: 'succeeded', commandId: 'c-1' });
    expect(ackOf(fromData, 'd-1')).toEqual({ commandId: 'c-1', deviceId: 'd-1' });
    const fromTopic = ackEventDataSchema.parse({ status: 'accepted', topic: 'devices/d-2/commands/c-2/ack' });
    expect(ackOf(fromTopic, undefined)).toEqual({ commandId: 'c-2', deviceId: 'd-2' });
    expect(ackEventDataSchema.safeParse({ status: 'done' }).success).toBe(false);
  });

  it('parses list queries: statuses case-insensitive, bounded limit', () => {
    expect(listQuerySchema.parse({ status: 'queued, SENT' })).toEqual({ status: ['QUEUED', 'SENT'], limit: 50 });
    expect(listQuerySchema.safeParse({ status: 'NOPE' }).success).toBe(false);
    expect(listQuerySchema.safeParse({ limit: '501' }).success).toBe(false);
  });

  it('round-trips page cursors and refuses foreign ones', () => {
    const at = new Date('2026-01-02T03:04:05.678Z');
    expect(decodeCursor(encodeCursor({ _id: 'c-9', createdAt: at }))).toEqual({ createdAt: at, id: 'c-9' });
    expect(decodeCursor('not-a-cursor')).toBeUndefined();
    expect(decodeCursor(Buffer.from('{"a":1}').toString('base64url'))).toBeUndefined();
  });

  it('orders history by time in the view (an ack may be stored before the SENT write)', () => {
    const t = (ms: number) => new Date(1_000 + ms);
    const view = toView({
      _id: 'c',
      deviceId: 'd',
      name: 'n',
      params: null,
      status: 'SUCCEEDED',
      createdAt: t(0),
      updatedAt: t(3),
      expiresAt: t(60_000),
      timeoutSeconds: 30,
      attempts: 1,
      history: [
        { status: 'QUEUED', at: t(0) },
        { status: 'SUCCEEDED', at: t(3) },
        { status: 'SENT', at: t(1), attempt: 1 },
      ],
    });
    expect(view.history.map((e) => e.status)).toEqual(['QUEUED', 'SENT', 'SUCCEEDED']);
  });

  it('validates its environment at start', () => {
    const env = {
      MONGODB_URL: 'mongodb://127.0.0.1:1',
      REDIS_URL: 'redis://127.0.0.1:2',
      K_SINK: 'http://127.0.0.1:3/kiot/default',
    };
    expect(loadConfig(commandDispatchConfigSchema, env)).toMatchObject({
      COMMAND_QUEUE_CAP: 100,
      COMMAND_SWEEP_INTERVAL_MS: 10_000,
      REDIS_KEY_PREFIX: 'kiot:',
    });
    expect(() => loadConfig(commandDispatchConfigSchema, { ...env, K_SINK: 'ftp://x' })).toThrow(ConfigError);
  });
});
