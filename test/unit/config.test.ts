import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { loadBridgeConfig } from '../../bridge/config.js';
import {
  baseConfigSchema,
  ConfigError,
  describeConfigIssue,
  loadConfig,
  mongoFields,
  sinkFields,
} from '../../shared/config.js';

const schema = baseConfigSchema.extend({ ...mongoFields, ...sinkFields });

describe('loadConfig', () => {
  it('applies defaults and coerces numbers', () => {
    const config = loadConfig(schema, {
      MONGODB_URL: 'mongodb://127.0.0.1:27017',
      K_SINK: 'http://127.0.0.1:1/',
      PORT: '9090',
    });
    expect(config).toMatchObject({ PORT: 9090, LOG_LEVEL: 'info', MONGODB_DB: 'kiot' });
  });

  it('names every bad variable in one error', () => {
    try {
      loadConfig(schema, { MONGODB_URL: 'http://nope', PORT: 'eighty' });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      const paths = (error as ConfigError).issues.map((issue) => issue.path).sort();
      expect(paths).toEqual(['K_SINK', 'MONGODB_URL', 'PORT']);
    }
  });

  const linesOf = (load: () => unknown): string[] => {
    try {
      load();
    } catch (error) {
      if (error instanceof ConfigError) return error.issues.map(describeConfigIssue);
      throw error;
    }
    return expect.unreachable('the configuration was accepted');
  };

  it('says per problem which variable, what is wrong and what is expected', () => {
    const strict = schema.extend({
      MODE: z.enum(['a', 'b']).default('a'),
      NAME: z.string().regex(/^[a-z]{1,8}$/),
      RATE: z.coerce.number().positive().max(100).default(1),
      ITEMS: z
        .string()
        .transform((text) => JSON.parse(text) as unknown)
        .pipe(z.array(z.object({ id: z.string() }))),
    });
    const lines = linesOf(() =>
      loadConfig(strict, {
        MONGODB_URL: 'http://nope',
        PORT: 'eighty',
        LOG_LEVEL: 'loud',
        MODE: 'c',
        NAME: 'Has Space',
        RATE: '500',
        ITEMS: '[{"id":1}]',
      }),
    );
    expect(lines).toEqual([
      'PORT is not a number; expected a whole number from 0 to 65535',
      'LOG_LEVEL is not one of the allowed values; expected one of fatal, error, warn, info, debug, trace, silent',
      'MONGODB_URL is not valid; expected a MongoDB connection string: mongodb://host[:port][,host…][/db][?options] or mongodb+srv://host',
      'K_SINK is not set; expected a URL with protocol http: or https:',
      'MODE is not one of the allowed values; expected one of a, b',
      'NAME has characters or a length that are not allowed; expected text matching ^[a-z]{1,8}$',
      'RATE is above the maximum; expected a number above 0 and at most 100',
      'ITEMS[0].id is not a string; expected a string',
    ]);
  });

  it('names the bridge setting that is missing, alone on its line', () => {
    const env = { MQTT_URL: 'mqtt://broker:1883', K_SINK: 'http://broker-ingress/' };
    expect(linesOf(() => loadBridgeConfig(env))).toEqual([
      'DEAD_LETTER_SINK is not set; expected a URL with protocol http: or https:',
    ]);
    expect(
      linesOf(() => loadBridgeConfig({ ...env, DEAD_LETTER_SINK: 'http://dls/', BRIDGE_SESSIONS: '0.5' })),
    ).toEqual(['BRIDGE_SESSIONS is not a whole number; expected a whole number from 1 to 64']);
  });
});

describe('connection strings', () => {
  const stores = baseConfigSchema.extend({ ...mongoFields, ...sinkFields });

  it('accepts a replica set and an SRV MongoDB URL, as the driver parses them', () => {
    for (const MONGODB_URL of [
      'mongodb://kiot:pw@m0.svc:27017,m1.svc:27017,m2.svc:27017/?replicaSet=rs0&authSource=admin',
      'mongodb+srv://kiot:pw@cluster0.example.mongodb.net/?retryWrites=true',
    ])
      expect(loadConfig(stores, { MONGODB_URL, K_SINK: 'http://127.0.0.1:1/' }).MONGODB_URL).toBe(MONGODB_URL);
  });
});
