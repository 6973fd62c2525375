import { InvalidInputError, NotFoundError, PreconditionFailedError, parseInput as parse } from '../../shared/errors.js';
import type { HttpRequest } from '../../shared/function-app.js';
import { queryObject } from '../../shared/http-io.js';
import { type ApiOperation, operation, problem, appProblems as problems } from '../../shared/openapi.js';
import type { AlertRulesRepository } from './alert-rules-repository.js';
import type { AlertsRepository } from './alerts-repository.js';
import { alertView, listAlerts } from './queries.js';
import {
  type AlertRule,
  alertIdSchema,
  alertPageSchema,
  alertQuerySchema,
  alertRuleInputSchema,
  alertRuleListSchema,
  alertRuleQuerySchema,
  alertRuleSchema,
  alertViewSchema,
  ruleIdSchema,
} from './schema.js';

/** What alertRuleInputSchema refines beyond its JSON Schema (schema.ts). */
const ALERT_RULE_RULES =
  'exactly one of deviceId or deviceType; clearThreshold, if given, on the safe side of threshold ' +
  '(at or below it for > and >=, at or above it for < and <=) (400)';

export interface AlertRouteDeps {
  alertRules: AlertRulesRepository;
  alerts: AlertsRepository;
  now(): number;
}

/** `If-Match: "3"` (RFC 9110 §13.1.1) names the version a client edits; absent = unconditional. */
function expectedVersion(request: HttpRequest): number | undefined {
  const header = request.headers['if-match'];
  if (header === undefined || header.trim() === '*') return undefined;
  const match = /^\s*(?:W\/)?"(\d+)"\s*$/.exec(header);
  if (!match)
    throw new InvalidInputError('If-Match must be an ETag this API returned, e.g. "3"', undefined, 'invalid_if_match');
  return Number(match[1]);
}

const withEtag = (rule: AlertRule, status = 200) => ({ status, body: rule, headers: { etag: `"${rule.version}"` } });

/** Alert rules CRUD at /alert-rules and the alert history at /alerts. */
const ruleAnswer = (description: string) => ({
  description,
  schema: alertRuleSchema,
  headers: { etag: 'the rule version' },
});
const ifMatch = {
  'if-match': { description: 'the version being replaced (its ETag), e.g. "3"; absent or * for none' },
};

export function alertRoutes(deps: AlertRouteDeps): ApiOperation[] {
  const ruleOf = async (request: HttpRequest) => {
    const rule = await deps.alertRules.get(request.params.ruleId ?? '');
    if (!rule) throw new NotFoundError(`alert rule ${request.params.ruleId} does not exist`, 'unknown_alert_rule');
    return rule;
  };
  return [
    operation({
      method: 'GET',
      path: '/alerts',
      scope: 'telemetry:read',
      summary: 'Raised and cleared alerts, newest first, by device, rule and status; cursor pagination',
      query: alertQuerySchema,
      responses: { 200: { description: 'a page of alerts', schema: alertPageSchema }, ...problems },
      async handle(request) {
        const query = parse(alertQuerySchema, queryObject(request.query), 'query');
        return { status: 200, body: await listAlerts({ ...query, cursor: query.cursor }, deps) };
      },
    }),
    operation({
      method: 'POST',
      path: '/alerts/:alertId/acknowledge',
      params: { alertId: alertIdSchema },
      scope: 'telemetry:write',
      summary: 'Acknowledge an alert: someone has seen it (the first acknowledgement stands; repeating it is harmless)',
      responses: {
        200: { description: 'the alert, acknowledged', schema: alertViewSchema },
        ...problems,
        404: problem('unknown alert'),
      },
      async handle(request) {
        const id = request.params.alertId ?? '';
        const alert = await deps.alerts.acknowledge(id, request.principal?.keyId ?? 'unknown', new Date(deps.now()));
        if (!alert) throw new NotFoundError(`alert ${id} does not exist`, 'unknown_alert');
        return { status: 200, body: alertView(alert) };
      },
    }),
    operation({
      method: 'POST',
      path: '/alert-rules',
      scope: 'telemetry:write',
      summary: 'Create an alert rule for a device or a device type',
      body: alertRuleInputSchema,
      rules: [ALERT_RULE_RULES],
      responses: { 201: ruleAnswer('created'), ...problems },
      async handle(request) {
        const input = parse(alertRuleInputSchema, request.body, 'alert rule');
        const rule = await deps.alertRules.create(input, new Date(deps.now()));
        return { ...withEtag(rule, 201), headers: { etag: `"${rule.version}"`, location: `/alert-rules/${rule.id}` } };
      },
    }),
    operation({
      method: 'GET',
      path: '/alert-rules',
      scope: 'telemetry:read',
      summary: 'Alert rules, by device or device type',
      query: alertRuleQuerySchema,
      responses: { 200: { description: 'the rules', schema: alertRuleListSchema }, ...problems },
      async handle(request) {
        const query = parse(alertRuleQuerySchema, queryObject(request.query), 'query');
        return { status: 200, body: { items: await deps.alertRules.list(query) } };
      },
    }),
    operation({
      method: 'GET',
      path: '/alert-rules/:ruleId',
      params: { ruleId: ruleIdSchema },
      scope: 'telemetry:read',
      summary: 'An alert rule',
      responses: { 200: ruleAnswer('the rule'), ...problems, 404: problem('unknown rule') },
      handle: async (request) => withEtag(await ruleOf(request)),
    }),
    operation({
      method: 'PUT',
      path: '/alert-rules/:ruleId',
      params: { ruleId: ruleIdSchema },
      scope: 'telemetry:write',
      summary: 'Replace an alert rule (optimistic concurrency with If-Match)',
      body: alertRuleInputSchema,
      rules: [ALERT_RULE_RULES],
      headers: ifMatch,
      responses: {
        200: ruleAnswer('replaced'),
        ...problems,
        404: problem('unknown rule'),
        412: problem('the rule changed since that version'),
      },
      async handle(request) {
        const input = parse(alertRuleInputSchema, request.body, 'alert rule');
        const result = await deps.alertRules.replace(
          request.params.ruleId ?? '',
          input,
          new Date(deps.now()),
          expectedVersion(request),
        );
        if (result === 'missing')
          throw new NotFoundError(`alert rule ${request.params.ruleId} does not exist`, 'unknown_alert_rule');
        if (result === 'stale')
          throw new PreconditionFailedError('the alert rule was changed since it was read; read it again');
        return withEtag(result);
      },
    }),
    operation({
      method: 'DELETE',
      path: '/alert-rules/:ruleId',
      params: { ruleId: ruleIdSchema },
      scope: 'telemetry:write',
      summary: 'Delete an alert rule',
      responses: { 204: { description: 'deleted' }, ...problems, 404: problem('unknown rule') },
      async handle(request) {
        if (!(await deps.alertRules.delete(request.params.ruleId ?? ''))) {
          throw new NotFoundError(`alert rule ${request.params.ruleId} does not exist`, 'unknown_alert_rule');
        }
        return { status: 204 };
      },
    }),
  ];
}
