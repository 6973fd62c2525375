import { InvalidInputError, NotFoundError, PreconditionFailedError } from '../../shared/errors.js';
import type { HttpRequest, Route } from '../../shared/function-app.js';
import type { AlertRulesRepository } from './alert-rules-repository.js';
import type { AlertsRepository } from './alerts-repository.js';
import { listAlerts } from './queries.js';
import { alertQuerySchema, alertRuleInputSchema, alertRuleQuerySchema, queryObject, type AlertRule } from './schema.js';

export interface AlertRouteDeps {
  alertRules: AlertRulesRepository;
  alerts: AlertsRepository;
  now(): number;
}

function parse<T>(schema: { safeParse(value: unknown): { success: true; data: T } | { success: false; error: import('zod').ZodError } }, value: unknown, what: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw InvalidInputError.fromZod(parsed.error, `the ${what} is invalid`);
  return parsed.data;
}

/** `If-Match: "3"` (RFC 9110 §13.1.1) names the version a client edits; absent = unconditional. */
function expectedVersion(request: HttpRequest): number | undefined {
  const header = request.headers['if-match'];
  if (header === undefined || header.trim() === '*') return undefined;
  const match = /^\s*(?:W\/)?"(\d+)"\s*$/.exec(header);
  if (!match) throw new InvalidInputError('If-Match must be an ETag this API returned, e.g. "3"', undefined, 'invalid_if_match');
  return Number(match[1]);
}

const withEtag = (rule: AlertRule, status = 200) => ({ status, body: rule, headers: { etag: `"${rule.version}"` } });

/** Alert rules CRUD at /alert-rules and the alert history at /alerts. */
export function alertRoutes(deps: AlertRouteDeps): Route[] {
  const ruleOf = async (request: HttpRequest) => {
    const rule = await deps.alertRules.get(request.params.ruleId ?? '');
    if (!rule) throw new NotFoundError(`alert rule ${request.params.ruleId} does not exist`, 'unknown_alert_rule');
    return rule;
  };
  return [
    {
      method: 'GET',
      path: '/alerts',
      scope: 'telemetry:read',
      async handle(request) {
        const query = parse(alertQuerySchema, queryObject(request.query), 'query');
        return { status: 200, body: await listAlerts({ ...query, cursor: query.cursor }, deps) };
      },
    },
    {
      method: 'POST',
      path: '/alert-rules',
      scope: 'telemetry:write',
      async handle(request) {
        const input = parse(alertRuleInputSchema, request.body, 'alert rule');
        const rule = await deps.alertRules.create(input, new Date(deps.now()));
        return { ...withEtag(rule, 201), headers: { etag: `"${rule.version}"`, location: `/alert-rules/${rule.id}` } };
      },
    },
    {
      method: 'GET',
      path: '/alert-rules',
      scope: 'telemetry:read',
      async handle(request) {
        const query = parse(alertRuleQuerySchema, queryObject(request.query), 'query');
        return { status: 200, body: { items: await deps.alertRules.list(query) } };
      },
    },
    { method: 'GET', path: '/alert-rules/:ruleId', scope: 'telemetry:read', handle: async (request) => withEtag(await ruleOf(request)) },
    {
      method: 'PUT',
      path: '/alert-rules/:ruleId',
      scope: 'telemetry:write',
      async handle(request) {
        const input = parse(alertRuleInputSchema, request.body, 'alert rule');
        const result = await deps.alertRules.replace(request.params.ruleId ?? '', input, new Date(deps.now()), expectedVersion(request));
        if (result === 'missing') throw new NotFoundError(`alert rule ${request.params.ruleId} does not exist`, 'unknown_alert_rule');
        if (result === 'stale') throw new PreconditionFailedError('the alert rule was changed since it was read; read it again');
        return withEtag(result);
      },
    },
    {
      method: 'DELETE',
      path: '/alert-rules/:ruleId',
      scope: 'telemetry:write',
      async handle(request) {
        if (!(await deps.alertRules.delete(request.params.ruleId ?? ''))) {
          throw new NotFoundError(`alert rule ${request.params.ruleId} does not exist`, 'unknown_alert_rule');
        }
        return { status: 204 };
      },
    },
  ];
}
