import { randomUUID } from 'node:crypto';
import type { MongoHandle } from '../../shared/mongo.js';
import { withMongo } from '../../shared/mongo.js';
import type { AlertRule, AlertRuleInput } from './schema.js';

export const ALERT_RULES_COLLECTION = 'alert_rules';

interface AlertRuleDocument extends Omit<AlertRule, 'id'> {
  _id: string;
}

export interface AlertRulesRepository {
  create(input: AlertRuleInput, now: Date): Promise<AlertRule>;
  get(id: string): Promise<AlertRule | undefined>;
  /** Replaces a rule; with `expectedVersion`, only if it is still at that version (If-Match). */
  replace(id: string, input: AlertRuleInput, now: Date, expectedVersion?: number): Promise<AlertRule | 'missing' | 'stale'>;
  delete(id: string): Promise<boolean>;
  list(filter: { deviceId?: string; deviceType?: string; limit: number }): Promise<AlertRule[]>;
  /** The enabled rules that apply to a device: its own and its type's. Cached for `ttlMs`. */
  forDevice(deviceId: string, deviceType: string | undefined): Promise<AlertRule[]>;
}

const toRule = ({ _id, ...rest }: AlertRuleDocument): AlertRule => ({ id: _id, ...rest });

export function createAlertRulesRepository(mongo: MongoHandle, options: { ttlMs: number; now?: () => number }): AlertRulesRepository {
  const now = options.now ?? Date.now;
  const cache = new Map<string, { at: number; rules: AlertRule[] }>();
  const collection = async () => (await mongo.db()).collection<AlertRuleDocument>(ALERT_RULES_COLLECTION);

  return {
    create: (input, at) =>
      withMongo(async () => {
        const doc: AlertRuleDocument = { _id: randomUUID(), ...input, version: 1, createdAt: at.toISOString(), updatedAt: at.toISOString() };
        await (await collection()).insertOne(doc);
        cache.clear();
        return toRule(doc);
      }),
    get: (id) =>
      withMongo(async () => {
        const doc = await (await collection()).findOne({ _id: id });
        return doc ? toRule(doc) : undefined;
      }),
    replace: (id, input, at, expectedVersion) =>
      withMongo(async () => {
        const rules = await collection();
        const current = await rules.findOne({ _id: id });
        if (!current) return 'missing';
        if (expectedVersion !== undefined && current.version !== expectedVersion) return 'stale';
        const next: AlertRuleDocument = { _id: id, ...input, version: current.version + 1, createdAt: current.createdAt, updatedAt: at.toISOString() };
        // The version in the filter makes two concurrent replaces of one version end with one winner.
        const result = await rules.replaceOne({ _id: id, version: current.version }, next);
        if (result.matchedCount === 0) return 'stale';
        cache.clear();
        return toRule(next);
      }),
    delete: (id) =>
      withMongo(async () => {
        const result = await (await collection()).deleteOne({ _id: id });
        cache.clear();
        return result.deletedCount === 1;
      }),
    list: (filter) =>
      withMongo(async () => {
        const query: Record<string, string> = {};
        if (filter.deviceId) query.deviceId = filter.deviceId;
        if (filter.deviceType) query.deviceType = filter.deviceType;
        const docs = await (await collection()).find(query, { sort: { createdAt: 1, _id: 1 }, limit: filter.limit }).toArray();
        return docs.map(toRule);
      }),
    async forDevice(deviceId, deviceType) {
      const key = `${deviceId}\u0000${deviceType ?? ''}`;
      const hit = cache.get(key);
      if (hit && now() - hit.at < options.ttlMs) return hit.rules;
      const rules = await withMongo(async () => {
        const scopes: Record<string, string>[] = [{ deviceId }];
        if (deviceType) scopes.push({ deviceType });
        return (await (await collection()).find({ enabled: true, $or: scopes }).toArray()).map(toRule);
      });
      if (cache.size > 100_000) cache.clear();
      cache.set(key, { at: now(), rules });
      return rules;
    },
  };
}
