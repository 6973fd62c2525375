import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { queryObject } from '../../shared/http-io.js';

describe('queryObject (shared/http-io.ts): a query as the object its schema parses', () => {
  it('gives a parameter given once as its value, and one given more than once as the list of its values', () => {
    expect(queryObject(new URLSearchParams('limit=5&cursor=abc'))).toEqual({ limit: '5', cursor: 'abc' });
    expect(queryObject(new URLSearchParams('offset=&offset=3&limit=2'))).toEqual({ offset: ['', '3'], limit: '2' });
  });

  it('always lists the parameters that may repeat', () => {
    expect(queryObject(new URLSearchParams('metric=a&from=1'), ['metric'])).toEqual({ metric: ['a'], from: '1' });
    expect(queryObject(new URLSearchParams('metric=a&metric=b'), ['metric'])).toEqual({ metric: ['a', 'b'] });
    expect(queryObject(new URLSearchParams(''), ['metric'])).toEqual({});
  });

  it('makes a schema of one value refuse a repeated parameter, coerced or not', () => {
    const schema = z.object({
      offset: z.coerce.number().int().min(0).default(0),
      status: z.literal('online').optional(),
    });
    expect(schema.safeParse(queryObject(new URLSearchParams('offset=&offset=3'))).success).toBe(false);
    expect(schema.safeParse(queryObject(new URLSearchParams('offset=1&offset=1'))).success).toBe(false);
    expect(schema.safeParse(queryObject(new URLSearchParams('status=online&status=online'))).success).toBe(false);
    expect(schema.parse(queryObject(new URLSearchParams('offset=3&status=online')))).toEqual({
      offset: 3,
      status: 'online',
    });
  });
});
