import { afterAll, beforeAll, beforeEach } from 'vitest';
import type { CloudEvent } from '../../../shared/cloudevents.js';
import { createMongo, type MongoHandle } from '../../../shared/mongo.js';
import { MONGODB_URL } from '../../support/services.js';
import type { ReceivedRequest } from '../../support/sink-server.js';
import { type Harness, startHarness } from './harness.js';

/** The outbox suites' K_SINK: answers 503 while `down`, else records the event in `accepted` (in order) and 202. */
export interface OutboxSink {
  down: boolean;
  accepted: CloudEvent<unknown>[];
}

export interface OutboxSuite {
  sink: OutboxSink;
  harness(): Harness;
  /** A MongoDB handle on the registry's own database, to read what the outbox left behind. */
  mongo(): MongoHandle;
}

/**
 * Registers the vitest hooks of an outbox suite: a registry harness with `env` behind the sink above, the sink up
 * and empty before each test, everything closed after the suite. Call it first in the `describe`, so that its
 * `beforeAll` runs before the suite's own.
 */
export function useOutboxSuite(env: Record<string, string>): OutboxSuite {
  const sink: OutboxSink = { down: false, accepted: [] };
  let harness: Harness | undefined;
  let mongo: MongoHandle | undefined;
  beforeAll(async () => {
    harness = await startHarness({ env });
    harness.sink.respond = (request: ReceivedRequest) => {
      if (sink.down) return { status: 503 };
      if (request.event) sink.accepted.push(request.event);
      return { status: 202 };
    };
    mongo = createMongo(MONGODB_URL, harness.dbName);
  });
  afterAll(async () => {
    await mongo?.close();
    await harness?.close();
  });
  beforeEach(() => {
    sink.down = false;
    sink.accepted = [];
  });
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('the outbox suite has not started (its beforeAll runs first)');
    return value;
  };
  return { sink, harness: () => started(harness), mongo: () => started(mongo) };
}
