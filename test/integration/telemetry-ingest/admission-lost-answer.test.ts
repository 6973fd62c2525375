import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAdmissionGate } from '../../../functions/telemetry-ingest/admission.js';
import { redisKeys } from '../../../functions/telemetry-ingest/redis-keys.js';
import { createRedis, type RedisHandle } from '../../../shared/redis.js';
import { REDIS_URL, uniqueName } from '../../support/services.js';

// A master killed in the middle of an admission (a failover) can run the script, replicate its marks and die
// before its answer arrives: the attempt never learns its marks exist. CI saw the redelivery then refused as
// "in progress" (409) until the marks expired (60 s). Here a proxy in front of the real Redis forwards the
// script and throws its answer away with the connection.
describe('telemetry-ingest admission: an answer lost with the connection', () => {
  let proxy: Server;
  let redis: RedisHandle;
  let dropNextScriptAnswer = false;
  const sockets = new Set<Socket>();

  beforeAll(async () => {
    const target = new URL(REDIS_URL);
    proxy = createServer((client) => {
      const upstream = connect(Number(target.port || 6379), target.hostname);
      let dropping = false;
      sockets.add(client).add(upstream);
      client.on('data', (chunk) => {
        if (dropNextScriptAnswer && /EVAL/i.test(chunk.toString('latin1'))) {
          dropNextScriptAnswer = false;
          dropping = true;
        }
        upstream.write(chunk);
      });
      upstream.on('data', (chunk) => {
        // Redis ran the script (its answer is here); the client never hears it.
        if (dropping) {
          client.destroy();
          upstream.destroy();
          return;
        }
        client.write(chunk);
      });
      const close = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on('error', close).on('close', close);
      upstream.on('error', close).on('close', close);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const { port } = proxy.address() as { port: number };
    redis = createRedis(`redis://127.0.0.1:${port}${target.pathname}`);
  });

  afterAll(async () => {
    await redis?.close();
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => proxy?.close(resolve));
  });

  it('lets the redelivery in at once instead of refusing it as in progress until the mark expires', async () => {
    const keys = redisKeys(uniqueName('adm'));
    const gate = createAdmissionGate(
      redis,
      keys,
      {
        ratePerSecond: 1_000,
        burst: 1_000,
        noticeIntervalMs: 60_000,
        dedupTtlSeconds: 600,
        pendingTtlSeconds: 60,
        presenceTtlSeconds: 600,
      },
      { index: async () => undefined },
    );
    const device = uniqueName('dev');
    // The script is loaded first, so the call whose answer is lost really runs it.
    expect(await gate.admitOnce([{ deviceId: device, eventId: 'warm-up' }], Date.now())).toEqual([
      { kind: 'admitted' },
    ]);

    const item = { deviceId: device, eventId: 'lost-answer' };
    dropNextScriptAnswer = true;
    const first = await gate.admitOnce([item], Date.now()).then(
      (answers) => answers,
      (error: Error) => error,
    );
    if (first instanceof Error) {
      // The attempt failed as "Redis unavailable" (503): its redelivery must be admitted as soon as Redis
      // answers again, not held off for pendingTtlSeconds by the mark the lost call left.
      const deadline = Date.now() + 5_000;
      let answer: unknown;
      do {
        await new Promise((resolve) => setTimeout(resolve, 100));
        answer = await gate.admitOnce([item], Date.now()).catch((error: Error) => error.message);
      } while (JSON.stringify(answer) !== JSON.stringify([{ kind: 'admitted' }]) && Date.now() < deadline);
      expect(answer).toEqual([{ kind: 'admitted' }]);
    } else {
      // The client sent the same call again after reconnecting: it finds its own mark and is admitted.
      expect(first).toEqual([{ kind: 'admitted' }]);
    }
    expect(dropNextScriptAnswer).toBe(false);
    // Admitted once: a later delivery of the same event, while this one is in progress, is told so.
    expect(await gate.admitOnce([item], Date.now())).toEqual([{ kind: 'in_progress' }]);
  });
});
