import type { Document } from 'mongodb';
import type { MongoHandle } from '../../shared/mongo.js';
import { withMongo } from '../../shared/mongo.js';

/**
 * Alerts and commands of a report's devices and range, read from the collections their capabilities own:
 * `alerts` (telemetry-ingest: one document per episode, `deviceId`, `raisedAt`, `severity`) and `commands`
 * (command-dispatch: one document per command, `deviceId`, `status`, `createdAt`). Read-only here.
 */
export interface ActivitySource {
  alerts(
    deviceIds: readonly string[] | 'fleet',
    from: Date,
    to: Date,
  ): Promise<{ raised: number; bySeverity: Record<string, number> }>;
  commandsByStatus(deviceIds: readonly string[] | 'fleet', from: Date, to: Date): Promise<Record<string, number>>;
}

export const ALERTS_COLLECTION = 'alerts';
export const COMMANDS_COLLECTION = 'commands';

export function createActivitySource(mongo: MongoHandle): ActivitySource {
  const countBy = async (
    collection: string,
    timeField: string,
    groupField: string,
    deviceIds: readonly string[] | 'fleet',
    from: Date,
    to: Date,
  ) => {
    const match: Document = { [timeField]: { $gte: from, $lt: to } };
    if (deviceIds !== 'fleet') match.deviceId = { $in: [...deviceIds] };
    const rows = await (await mongo.db())
      .collection(collection)
      .aggregate<{ _id: string | null; n: number }>([
        { $match: match },
        { $group: { _id: `$${groupField}`, n: { $sum: 1 } } },
      ])
      .toArray();
    const out: Record<string, number> = {};
    for (const row of rows) out[String(row._id ?? 'unknown')] = row.n;
    return out;
  };
  return {
    alerts: (deviceIds, from, to) =>
      withMongo(async () => {
        const bySeverity = await countBy(ALERTS_COLLECTION, 'raisedAt', 'severity', deviceIds, from, to);
        return { raised: Object.values(bySeverity).reduce((a, b) => a + b, 0), bySeverity };
      }),
    commandsByStatus: (deviceIds, from, to) =>
      withMongo(() => countBy(COMMANDS_COLLECTION, 'createdAt', 'status', deviceIds, from, to)),
  };
}
