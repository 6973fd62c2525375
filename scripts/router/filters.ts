import type { CloudEventV1 } from '../../shared/cloudevents.js';
import type { SubscriptionsApiFilter } from './manifest-schema.js';

/*
 * Trigger filters with Knative Eventing's semantics (pkg/eventfilter): each expression answers pass,
 * fail or "no filter" (nothing to decide, e.g. an empty `filters` list); the broker delivers unless the
 * answer is fail.
 */
export type FilterResult = 'pass' | 'fail' | 'none';

export type EventPredicate = (event: CloudEventV1<unknown>) => FilterResult;

/**
 * A context attribute as a string, or `undefined` when the event does not carry it. Knative's
 * LookupAttribute knows the standard attributes (and the v0.3 names `schemaurl`, `datamediatype`)
 * and otherwise reads the extensions; an unset optional attribute is the empty string there, which every
 * dialect treats as absent.
 */
export function lookupAttribute(event: CloudEventV1<unknown>, name: string): string | undefined {
  const record = event as unknown as Record<string, unknown>;
  let value: unknown;
  switch (name) {
    case 'schemaurl':
      value = event.dataschema;
      break;
    case 'datamediatype':
      value = event.datacontenttype?.split(';')[0]?.trim();
      break;
    default:
      value = record[name];
  }
  if (value === undefined || value === null || value === '') return undefined;
  return value instanceof Date ? value.toISOString() : String(value);
}

function all(results: Iterable<FilterResult>): FilterResult {
  // And(): "no filter" takes the other side; any fail fails.
  let result: FilterResult = 'none';
  for (const next of results) {
    if (next === 'fail') return 'fail';
    if (next === 'pass') result = 'pass';
  }
  return result;
}

function any(results: Iterable<FilterResult>): FilterResult {
  // Or(): "no filter" takes the other side; any pass passes.
  let result: FilterResult = 'none';
  for (const next of results) {
    if (next === 'pass') return 'pass';
    if (next === 'fail') result = 'fail';
  }
  return result;
}

function compareEach(map: Record<string, string>, test: (actual: string, expected: string) => boolean): EventPredicate {
  const entries = Object.entries(map);
  return (event) => {
    for (const [name, expected] of entries) {
      const actual = lookupAttribute(event, name);
      if (actual === undefined || !test(actual, expected)) return 'fail';
    }
    return 'pass';
  };
}

/** One Subscriptions API expression (`exact`, `prefix`, `suffix`, `all`, `any`, `not`). */
export function compileExpression(filter: SubscriptionsApiFilter): EventPredicate {
  if (filter.exact) return compareEach(filter.exact, (actual, expected) => actual === expected);
  if (filter.prefix) return compareEach(filter.prefix, (actual, expected) => actual.startsWith(expected));
  if (filter.suffix) return compareEach(filter.suffix, (actual, expected) => actual.endsWith(expected));
  if (filter.all) {
    const inner = filter.all.map(compileExpression);
    return (event) => all(inner.map((predicate) => predicate(event)));
  }
  if (filter.any) {
    const inner = filter.any.map(compileExpression);
    return (event) => any(inner.map((predicate) => predicate(event)));
  }
  if (filter.not) {
    const inner = compileExpression(filter.not);
    return (event) => {
      const result = inner(event);
      return result === 'pass' ? 'fail' : result === 'fail' ? 'pass' : 'none';
    };
  }
  if (filter.cesql !== undefined) throw new Error('cesql filters are not supported by the local router');
  return () => 'none';
}

/**
 * The legacy `spec.filter.attributes`: every attribute must equal its value; the value "" means "any
 * value, but present" (Knative's TriggerAnyFilter).
 */
export function compileAttributesFilter(attributes: Record<string, string>): EventPredicate {
  const entries = Object.entries(attributes);
  return (event) => {
    for (const [name, expected] of entries) {
      const actual = lookupAttribute(event, name);
      if (actual === undefined) return 'fail';
      if (expected !== '' && actual !== expected) return 'fail';
    }
    return 'pass';
  };
}

/**
 * The filter of a Trigger. Knative Trigger spec: "In the event of users specifying both Filter and
 * Filters, then the latter will override the former" (a non-empty `filters` wins); neither = all events.
 */
export function compileTriggerFilter(spec: {
  filter?: { attributes?: Record<string, string> };
  filters?: SubscriptionsApiFilter[];
}): (event: CloudEventV1<unknown>) => boolean {
  let predicate: EventPredicate = () => 'none';
  if (spec.filters && spec.filters.length > 0) {
    const inner = spec.filters.map(compileExpression);
    predicate = (event) => all(inner.map((expression) => expression(event)));
  } else if (spec.filter?.attributes) {
    predicate = compileAttributesFilter(spec.filter.attributes);
  }
  return (event) => predicate(event) !== 'fail';
}
