import { describe, expect, it } from 'vitest';
import { baseConfigSchema, ConfigError, loadConfig, mongoFields, sinkFields } from '../../shared/config.js';

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
});
