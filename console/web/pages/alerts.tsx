import { useState } from 'preact/hooks';
import { Link } from 'wouter-preact';
import { ApiError } from '../api.js';
import { useLoad, useNow } from '../components/hooks.js';
import { PageTitle } from '../components/layout.js';
import { Badge, Dialog, ErrorNote, Field, Loading, Section, useAction } from '../components/ui.js';
import { etagOf } from '../logic/commands.js';
import { formatAgo, formatTime, formatValue } from '../logic/format.js';
import { useSession } from '../session.js';
import type { AlertView, Page } from './types.js';

interface AlertRule {
  id: string;
  name?: string;
  deviceId?: string;
  deviceType?: string;
  metric: string;
  comparison: string;
  threshold: number;
  clearThreshold?: number;
  forSamples: number;
  forSeconds: number;
  severity: 'info' | 'warning' | 'critical';
  enabled: boolean;
  version: number;
}

const EMPTY_RULE = {
  name: '',
  target: 'device' as 'device' | 'type',
  targetId: '',
  metric: '',
  comparison: '>',
  threshold: '',
  clearThreshold: '',
  forSamples: '1',
  severity: 'warning',
  enabled: true,
};

function RuleDialog(props: { rule: AlertRule | 'new' | undefined; onClose(): void; onSaved(): void }) {
  const { api } = useSession();
  const rule = props.rule === 'new' ? undefined : props.rule;
  const [form, setForm] = useState(() =>
    rule
      ? {
          name: rule.name ?? '',
          target: (rule.deviceId ? 'device' : 'type') as 'device' | 'type',
          targetId: rule.deviceId ?? rule.deviceType ?? '',
          metric: rule.metric,
          comparison: rule.comparison,
          threshold: String(rule.threshold),
          clearThreshold: rule.clearThreshold === undefined ? '' : String(rule.clearThreshold),
          forSamples: String(rule.forSamples),
          severity: rule.severity,
          enabled: rule.enabled,
        }
      : EMPTY_RULE,
  );
  const save = useAction(async () => {
    const body = {
      ...(form.name ? { name: form.name } : {}),
      ...(form.target === 'device' ? { deviceId: form.targetId } : { deviceType: form.targetId }),
      metric: form.metric,
      comparison: form.comparison,
      threshold: Number(form.threshold),
      ...(form.clearThreshold === '' ? {} : { clearThreshold: Number(form.clearThreshold) }),
      forSamples: Number(form.forSamples) || 1,
      severity: form.severity,
      enabled: form.enabled,
    };
    try {
      if (rule)
        await api.request('telemetry-ingest', `/alert-rules/${encodeURIComponent(rule.id)}`, {
          method: 'PUT',
          body,
          headers: { 'if-match': etagOf(rule.version) },
        });
      else await api.request('telemetry-ingest', '/alert-rules', { method: 'POST', body });
    } catch (error) {
      if (error instanceof ApiError && error.status === 412)
        throw new Error('The rule was changed meanwhile: close, and edit it again.');
      throw error;
    }
    props.onSaved();
    props.onClose();
  });
  const set = (key: keyof typeof form) => (event: { currentTarget: { value: string } }) =>
    setForm({ ...form, [key]: event.currentTarget.value });
  return (
    <form
      onSubmit={(event) => {
        event.preventDefault();
        void save.run();
      }}
    >
      <Field label="Name">
        <input name="name" value={form.name} onInput={set('name')} />
      </Field>
      <fieldset>
        <legend>Applies to</legend>
        <label class="inline">
          <input
            type="radio"
            name="target"
            checked={form.target === 'device'}
            onChange={() => setForm({ ...form, target: 'device' })}
          />{' '}
          a device
        </label>
        <label class="inline">
          <input
            type="radio"
            name="target"
            checked={form.target === 'type'}
            onChange={() => setForm({ ...form, target: 'type' })}
          />{' '}
          every device of a type
        </label>
      </fieldset>
      <Field label={form.target === 'device' ? 'Device id' : 'Device type'}>
        <input name="targetId" required value={form.targetId} onInput={set('targetId')} />
      </Field>
      <Field label="Metric">
        <input name="metric" required value={form.metric} onInput={set('metric')} />
      </Field>
      <Field label="Comparison">
        <select name="comparison" value={form.comparison} onChange={set('comparison')}>
          {['>', '>=', '<', '<='].map((c) => (
            <option key={c} value={c}>
              {c}
            </option>
          ))}
        </select>
      </Field>
      <Field label="Threshold">
        <input name="threshold" type="number" step="any" required value={form.threshold} onInput={set('threshold')} />
      </Field>
      <Field label="Clear threshold" hint="empty: the threshold (no hysteresis)">
        <input
          name="clearThreshold"
          type="number"
          step="any"
          value={form.clearThreshold}
          onInput={set('clearThreshold')}
        />
      </Field>
      <Field label="Consecutive samples to raise">
        <input name="forSamples" type="number" min={1} value={form.forSamples} onInput={set('forSamples')} />
      </Field>
      <Field label="Severity">
        <select name="severity" value={form.severity} onChange={set('severity')}>
          <option value="info">info</option>
          <option value="warning">warning</option>
          <option value="critical">critical</option>
        </select>
      </Field>
      <label class="inline">
        <input
          type="checkbox"
          name="enabled"
          checked={form.enabled}
          onChange={(e) => setForm({ ...form, enabled: e.currentTarget.checked })}
        />{' '}
        enabled
      </label>
      <ErrorNote error={save.error} />
      <button type="submit" class="primary" disabled={save.busy}>
        {rule ? 'Save rule' : 'Create rule'}
      </button>
    </form>
  );
}

/** Alert rules (create, edit, delete), the alerts open now (acknowledge), and the recent ones. */
export function AlertsPage() {
  const { api, can } = useSession();
  const now = useNow(5_000);
  const [editing, setEditing] = useState<AlertRule | 'new' | undefined>();
  const rules = useLoad(
    (signal) => api.get<{ items: AlertRule[] }>('telemetry-ingest', '/alert-rules?limit=500', signal),
    [api],
  );
  const open = useLoad(
    (signal) => api.get<Page<AlertView>>('telemetry-ingest', '/alerts?status=active&limit=100', signal),
    [api],
    5_000,
  );
  const recent = useLoad(
    (signal) => api.get<Page<AlertView>>('telemetry-ingest', '/alerts?limit=50', signal),
    [api],
    10_000,
  );
  const acknowledge = useAction(async (id: string) => {
    await api.request('telemetry-ingest', `/alerts/${encodeURIComponent(id)}/acknowledge`, { method: 'POST' });
    open.reload();
  });
  const remove = useAction(async (rule: AlertRule) => {
    if (!window.confirm(`Delete the rule on ${rule.metric} ${rule.comparison} ${rule.threshold}?`)) return;
    await api.request('telemetry-ingest', `/alert-rules/${encodeURIComponent(rule.id)}`, { method: 'DELETE' });
    rules.reload();
  });
  return (
    <>
      <PageTitle>Alerts</PageTitle>
      <Section title="Open alerts">
        <ErrorNote error={open.error ?? acknowledge.error} />
        {!open.data ? <Loading what="alerts" /> : null}
        {open.data?.items.length === 0 ? <p class="muted">No alert is open.</p> : null}
        {open.data && open.data.items.length > 0 ? (
          <div class="table-wrap">
            <table data-testid="open-alerts">
              <caption class="visually-hidden">Alerts raised and not cleared</caption>
              <thead>
                <tr>
                  <th scope="col">Device</th>
                  <th scope="col">Condition</th>
                  <th scope="col">Value</th>
                  <th scope="col">Severity</th>
                  <th scope="col">Raised</th>
                  <th scope="col">Acknowledged</th>
                </tr>
              </thead>
              <tbody>
                {open.data.items.map((alert) => (
                  <tr key={alert.id}>
                    <td>
                      <Link href={`/devices/${encodeURIComponent(alert.deviceId)}`}>{alert.deviceId}</Link>
                    </td>
                    <td>
                      {alert.metric} {alert.comparison} {alert.threshold}
                    </td>
                    <td>{formatValue(alert.raisedValue)}</td>
                    <td>
                      <Badge status={alert.severity} />
                    </td>
                    <td>{formatAgo(alert.raisedAt, now)}</td>
                    <td>
                      {alert.acknowledgedAt ? (
                        `${formatAgo(alert.acknowledgedAt, now)} by ${alert.acknowledgedBy}`
                      ) : can.telemetryWrite ? (
                        <button
                          type="button"
                          onClick={() => void acknowledge.run(alert.id)}
                          disabled={acknowledge.busy}
                        >
                          Acknowledge
                        </button>
                      ) : (
                        'no'
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : null}
      </Section>
      <Section
        title="Rules"
        actions={
          can.telemetryWrite ? (
            <button type="button" class="primary" onClick={() => setEditing('new')}>
              New rule
            </button>
          ) : undefined
        }
      >
        <ErrorNote error={rules.error ?? remove.error} />
        {rules.data?.items.length === 0 ? <p class="muted">No rules yet.</p> : null}
        {rules.data && rules.data.items.length > 0 ? (
          <div class="table-wrap">
            <table>
              <caption class="visually-hidden">Alert rules</caption>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Applies to</th>
                  <th scope="col">Condition</th>
                  <th scope="col">Severity</th>
                  <th scope="col">Enabled</th>
                  {can.telemetryWrite ? <th scope="col">Actions</th> : null}
                </tr>
              </thead>
              <tbody>
                {rules.data.items.map((rule) => (
                  <tr key={rule.id}>
                    <td>{rule.name ?? rule.id}</td>
                    <td>{rule.deviceId ? `device ${rule.deviceId}` : `type ${rule.deviceType}`}</td>
                    <td>
                      {rule.metric} {rule.comparison} {rule.threshold}
                      {rule.forSamples > 1 ? ` for ${rule.forSamples} samples` : ''}
                    </td>
                    <td>
                      <Badge status={rule.severity} />
                    </td>
                    <td>{rule.enabled ? 'yes' : 'no'}</td>
                    {can.telemetryWrite ? (
                      <td class="row">
                        <button type="button" onClick={() => setEditing(rule)}>
                          Edit
                        </button>
                        <button type="button" class="danger" onClick={() => void remove.run(rule)}>
                          Delete
                        </button>
                      </td>
                    ) : null}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : null}
      </Section>
      <Section title="Recent alerts">
        <ErrorNote error={recent.error} />
        {recent.data ? (
          <ul class="plain">
            {recent.data.items.map((alert) => (
              <li key={alert.id}>
                <Badge status={alert.status === 'active' ? alert.severity : 'cleared'} label={alert.status} />{' '}
                <Link href={`/devices/${encodeURIComponent(alert.deviceId)}`}>{alert.deviceId}</Link> {alert.metric}{' '}
                {alert.comparison} {alert.threshold} · raised {formatTime(alert.raisedAt)}
                {alert.clearedAt ? ` · cleared ${formatTime(alert.clearedAt)}` : ''}
              </li>
            ))}
          </ul>
        ) : null}
      </Section>
      <Dialog
        title={editing === 'new' ? 'New alert rule' : 'Edit alert rule'}
        open={editing !== undefined}
        onClose={() => setEditing(undefined)}
      >
        <RuleDialog rule={editing} onClose={() => setEditing(undefined)} onSaved={rules.reload} />
      </Dialog>
    </>
  );
}
