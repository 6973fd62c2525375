import { type CommandStartedEvent, MongoServerError, MongoWriteConcernError } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiKeysConfigSchema } from '../../functions/api-keys/config.js';
import { commandDispatchConfigSchema } from '../../functions/command-dispatch/config.js';
import { deadLettersConfigSchema } from '../../functions/dead-letters/config.js';
import { configSchema as registryConfigSchema } from '../../functions/device-registry/schema.js';
import { jobsConfigSchema } from '../../functions/jobs/config.js';
import { configSchema as reportConfigSchema } from '../../functions/report-generation/schema.js';
import { configSchema as telemetryConfigSchema } from '../../functions/telemetry-ingest/config.js';
import { loadConfig } from '../../shared/config.js';
import { isMongoUnavailable, mongoOptions } from '../../shared/mongo.js';
import { uniqueName } from '../support/services.js';
import { type Harness, startHarness, TYPES } from './telemetry-ingest/harness.js';

// The write concern and read preference are configuration (MONGODB_WRITE_CONCERN, MONGODB_JOURNAL,
// MONGODB_WRITE_TIMEOUT_MS, MONGODB_READ_PREFERENCE) that every deployable passes to the driver, and the
// driver puts on every write on the wire. A standalone server (mongo-java-server) accepts `majority`.
describe('MongoDB write concern and read preference', () => {
  const required = {
    MONGODB_URL: 'mongodb://127.0.0.1:1',
    REDIS_URL: 'redis://127.0.0.1:1',
    K_SINK: 'http://127.0.0.1:1/',
    DEAD_LETTER_SINK: 'http://127.0.0.1:1/',
    MQTT_URL: 'mqtt://127.0.0.1:1',
    PROVISIONING_REPLY_KEY: 'k'.repeat(43),
  };
  const schemas = {
    'telemetry-ingest': telemetryConfigSchema,
    'command-dispatch': commandDispatchConfigSchema,
    'device-registry': registryConfigSchema,
    'report-generation': reportConfigSchema,
    'dead-letters': deadLettersConfigSchema,
    jobs: jobsConfigSchema,
    'api-keys': apiKeysConfigSchema,
  };

  it.each(Object.entries(schemas))('%s defaults to majority with journal, primary reads', (_, schema) => {
    expect(mongoOptions(loadConfig(schema, required))).toEqual({
      writeConcern: { w: 'majority', journal: true, wtimeoutMS: 10_000 },
      readPreference: 'primary',
    });
    const tuned = loadConfig(schema, {
      ...required,
      MONGODB_WRITE_CONCERN: '2',
      MONGODB_JOURNAL: 'false',
      MONGODB_WRITE_TIMEOUT_MS: '2500',
      MONGODB_READ_PREFERENCE: 'primaryPreferred',
    });
    expect(mongoOptions(tuned)).toEqual({
      writeConcern: { w: 2, journal: false, wtimeoutMS: 2_500 },
      readPreference: 'primaryPreferred',
    });
    expect(() => loadConfig(schema, { ...required, MONGODB_READ_PREFERENCE: 'anywhere' })).toThrow(
      /MONGODB_READ_PREFERENCE/,
    );
  });

  it('answers 503 when a majority does not confirm in time or the primary steps down', () => {
    const timeout = new MongoWriteConcernError({
      writeConcernError: { code: 64, errmsg: 'waiting for replication timed out' },
    } as never);
    expect(isMongoUnavailable(timeout)).toBe(true);
    expect(isMongoUnavailable(new MongoServerError({ code: 189, errmsg: 'PrimarySteppedDown' }))).toBe(true);
    expect(isMongoUnavailable(new MongoServerError({ code: 11000, errmsg: 'E11000 duplicate key' }))).toBe(false);
  });

  describe('on the wire, from a function', () => {
    let h: Harness;
    const commands: CommandStartedEvent[] = [];
    const device = uniqueName('dev');

    beforeAll(async () => {
      h = await startHarness(
        { MONGODB_WRITE_TIMEOUT_MS: '7000', MONGODB_READ_PREFERENCE: 'primaryPreferred' },
        { mongoOptions: { monitorCommands: true } },
      );
      const db = await h.mongo.db();
      db.client.on('commandStarted', (event) => commands.push(event));
      await h.addDevice(device);
    });
    afterAll(() => h?.close());

    it('sends every write with w: majority, j: true and the timeout, and reads with the read preference', async () => {
      expect((await h.send(TYPES.telemetry, device, { metrics: { t: 1 } })).status).toBe(204);
      expect((await h.send(TYPES.state, device, { fw: '1.0' })).status).toBe(204);
      const writes = commands.filter(
        (event) => ['insert', 'update'].includes(event.commandName) && event.databaseName === h.config.MONGODB_DB,
      );
      const collections = writes.map((event) => event.command[event.commandName] as string);
      expect(collections).toEqual(expect.arrayContaining(['telemetry', 'shadows']));
      for (const event of writes)
        expect(event.command.writeConcern).toEqual({ w: 'majority', j: true, wtimeout: 7000 });

      expect((await h.get(`/devices/${device}/telemetry?limit=5`)).status).toBe(200);
      const db = await h.mongo.db();
      expect(db.readPreference.mode).toBe('primaryPreferred');
      // isMaster: the handshake every compatible server answers (mongo-java-server has no `hello`).
      const hello = await db.admin().command({ isMaster: 1 });
      // A replica set (a real MongoDB through MONGODB_URL) receives the preference with each read; a
      // standalone server is never sent one (Server Selection specification), whatever the setting.
      const reads = commands.filter((event) => event.commandName === 'find' && event.databaseName === db.databaseName);
      expect(reads.length).toBeGreaterThan(0);
      for (const event of reads)
        expect(event.command.$readPreference?.mode).toBe(hello.setName ? 'primaryPreferred' : undefined);
    });
  });
});
