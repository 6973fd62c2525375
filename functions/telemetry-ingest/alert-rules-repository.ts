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
  replace(
    id: string,
    input: AlertRuleInput,
    now: Date,
    expectedVersion?: number,
  ): Promise<AlertRule | 'missing' | 'stale'>;
  delete(id: string): Promise<boolean>;
  list(filter: { deviceId?: string; deviceType?: string; limit: number }): Promise<AlertRule[]>;
  /**
   * The enabled rules that apply to a device: its own and its type's. All enabled rules are read with
   * one query per `ttlMs` and indexed in memory, so the hot path costs no query per device.
   */
  forDevice(deviceId: string, deviceType: string | undefined): Promise<AlertRule[]>;
  /** The same for many devices with one wait: only devices that have rules are in the answer. */
  forDevices(devices: Iterable<{ id: string; type?: string }>): Promise<Map<string, AlertRule[]>>;
}

const toRule = ({ _id, ...rest }: AlertRuleDocument): AlertRule => ({ id: _id, ...rest });

export function createAlertRulesRepository(
  mongo: MongoHandle,
  options: { ttlMs: number; now?: () => number },
): AlertRulesRepository {
  const now = options.now ?? Date.now;
  let cache: { at: number; byDevice: Map<string, AlertRule[]>; byType: Map<string, AlertRule[]> } | undefined;
  let loading: Promise<NonNullable<typeof cache>> | undefined;
  const invalidate = () => {
    cache = undefined;
  };
  const push = (map: Map<string, AlertRule[]>, key: string, rule: AlertRule) =>
    map.set(key, [...(map.get(key) ?? []), rule]);

  async function load(): Promise<NonNullable<typeof cache>> {
    const docs = await withMongo(async () => (await collection()).find({ enabled: true }).toArray());
    const byDevice = new Map<string, AlertRule[]>();
    const byType = new Map<string, AlertRule[]>();
    for (const rule of docs.map(toRule)) {
      if (rule.deviceId) push(byDevice, rule.deviceId, rule);
      if (rule.deviceType) push(byType, rule.deviceType, rule);
    }
    return { at: now(), byDevice, byType };
  }
  const collection = async () => (await mongo.db()).collection<AlertRuleDocument>(ALERT_RULES_COLLECTION);

  /** One load at a time: concurrent events share the same query. */
  function reload(): Promise<NonNullable<typeof cache>> {
    loading ??= load()
      .then((loaded) => {
        cache = loaded;
        return loaded;
      })
      .finally(() => {
        loading = undefined;
      });
    return loading;
  }

  async function forDevices(devices: Iterable<{ id: string; type?: string }>): Promise<Map<string, AlertRule[]>> {
    const age = cache ? now() - cache.at : Infinity;
    const index = !cache || age >= options.ttlMs ? await reload() : cache;
    // Past half its TTL the index is read again in the background while it still answers: every batch of that
    // moment would otherwise wait for the query. No answer comes from an index older than the TTL.
    if (age >= options.ttlMs / 2 && age < options.ttlMs) void reload().catch(() => undefined);
    const rules = new Map<string, AlertRule[]>();
    for (const device of devices) {
      const own = index.byDevice.get(device.id);
      const typed = device.type ? index.byType.get(device.type) : undefined;
      if (own || typed) rules.set(device.id, [...(own ?? []), ...(typed ?? [])]);
    }
    return rules;
  }

  return {
    create: (input, at) =>
      withMongo(async () => {
        const doc: AlertRuleDocument = {
          _id: randomUUID(),
          ...input,
          version: 1,
          createdAt: at.toISOString(),
          updatedAt: at.toISOString(),
        };
        await (await collection()).insertOne(doc);
        invalidate();
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
        const next: AlertRuleDocument = {
          _id: id,
          ...input,
          version: current.version + 1,
          createdAt: current.createdAt,
          updatedAt: at.toISOString(),
        };
        // The version in the filter makes two concurrent replaces of one version end with one winner.
        const result = await rules.replaceOne({ _id: id, version: current.version }, next);
        if (result.matchedCount === 0) return 'stale';
        invalidate();
        return toRule(next);
      }),
    delete: (id) =>
      withMongo(async () => {
        const result = await (await collection()).deleteOne({ _id: id });
        invalidate();
        return result.deletedCount === 1;
      }),
    list: (filter) =>
      withMongo(async () => {
        const query: Record<string, string> = {};
        if (filter.deviceId) query.deviceId = filter.deviceId;
        if (filter.deviceType) query.deviceType = filter.deviceType;
        const docs = await (await collection())
          .find(query, { sort: { createdAt: 1, _id: 1 }, limit: filter.limit })
          .toArray();
        return docs.map(toRule);
      }),
    forDevice: async (deviceId, deviceType) =>
      (await forDevices([{ id: deviceId, ...(deviceType ? { type: deviceType } : {}) }])).get(deviceId) ?? [],
    forDevices,
  };
}
