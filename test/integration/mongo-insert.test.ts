import type { CommandStartedEvent } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createMongo,
  INSERT_COMMAND_MAX_BYTES,
  insertUnordered,
  type MongoHandle,
  unorderedInsertErrors,
  withMongo,
} from '../../shared/mongo.js';
import { MONGODB_URL, uniqueName } from '../support/services.js';

describe('insertUnordered: the raw insert command (shared/mongo.ts)', () => {
  const dbName = uniqueName('insert');
  let mongo: MongoHandle;
  const commands: CommandStartedEvent[] = [];

  beforeAll(async () => {
    mongo = createMongo(MONGODB_URL, dbName, {
      monitorCommands: true,
      writeConcern: { w: 'majority', journal: true, wtimeoutMS: 5_000 },
    });
    const db = await mongo.db();
    db.client.on('commandStarted', (event) => commands.push(event));
  });
  afterAll(async () => {
    await (await mongo.db()).dropDatabase();
    await mongo.close();
  });

  const docs = (ids: string[]) => ids.map((id) => ({ _id: id, v: 1 }));
  const insertsOf = (collection: string) =>
    commands.filter((event) => event.commandName === 'insert' && event.command.insert === collection);

  it('inserts unordered with the database write concern, and reports duplicates by position', async () => {
    const db = await mongo.db();
    expect(await insertUnordered(db, 'plain', docs(['a', 'b']), () => 100)).toEqual({ duplicates: [], others: [] });
    const again = await insertUnordered(db, 'plain', docs(['c', 'a', 'd', 'b']), () => 100);
    expect(again).toEqual({ duplicates: [1, 3], others: [] });
    expect((await db.collection('plain').find().toArray()).map((doc) => doc._id).sort()).toEqual(['a', 'b', 'c', 'd']);
    for (const event of insertsOf('plain')) {
      expect(event.command.ordered).toBe(false);
      expect(event.command.writeConcern).toEqual({ w: 'majority', j: true, wtimeout: 5_000 });
    }
  });

  it('splits by the estimated size, and places the errors of every command in the whole list', async () => {
    const db = await mongo.db();
    await insertUnordered(db, 'split', docs(['x2', 'x5']), () => 100);
    const before = insertsOf('split').length;
    // Each document counted as a third of a command's bytes: three to a command at most.
    const third = Math.floor(INSERT_COMMAND_MAX_BYTES / 3);
    const ids = ['x0', 'x1', 'x2', 'x3', 'x4', 'x5', 'x6'];
    expect(await insertUnordered(db, 'split', docs(ids), () => third)).toEqual({ duplicates: [2, 5], others: [] });
    const sent = insertsOf('split').slice(before);
    // The commands run at once: their order on the wire is the connection pool's.
    expect(sent.map((event) => (event.command.documents as unknown[]).length).sort()).toEqual([1, 3, 3]);
    expect(await db.collection('split').countDocuments()).toBe(7);
  });

  it('reports other write errors apart, and a server out of reach as unavailable', async () => {
    const db = await mongo.db();
    // A document without `_id` is given none by a raw command; one of an `_id` that is an array is refused.
    const result = await insertUnordered(db, 'other', [{ _id: 'ok' }, { _id: [1, 2] }] as never[], () => 100);
    expect(result.duplicates).toEqual([]);
    expect(result.others.map((other) => other.index)).toEqual([1]);

    const down = createMongo('mongodb://127.0.0.1:1', uniqueName('down'), { serverSelectionTimeoutMS: 300 });
    await expect(withMongo(async () => insertUnordered(await down.db(), 'x', docs(['a']), () => 100))).rejects.toThrow(
      /mongodb/i,
    );
    await down.close();
  });

  it("sorts a failed insertMany's write errors as the raw command's are sorted (one classifier for both)", async () => {
    const collection = (await mongo.db()).collection<{ _id: unknown; v: number }>('bulk');
    await collection.insertMany(docs(['a', 'b']));
    const failed = await collection
      .insertMany(
        [
          { _id: 'c', v: 1 },
          { _id: 'a', v: 1 },
          { _id: [1, 2], v: 1 },
          { _id: 'b', v: 1 },
        ],
        { ordered: false },
      )
      .then(
        () => undefined,
        (error: unknown) => error,
      );
    const errors = unorderedInsertErrors(failed);
    expect(errors?.duplicates).toEqual([1, 3]);
    expect(errors?.others.map((other) => other.index)).toEqual([2]);
    expect(unorderedInsertErrors(new Error('not a bulk write'))).toBeUndefined();
  });
});
