import { useEffect, useState } from 'preact/hooks';
import type { Api } from '../api.js';
import { useLoad } from '../components/hooks.js';
import { PageTitle } from '../components/layout.js';
import { Dialog, ErrorNote, Field, Loading, Section, useAction } from '../components/ui.js';
import { parseTags } from '../logic/devices-query.js';
import { formatTime } from '../logic/format.js';
import { useSession } from '../session.js';
import type { Page } from './types.js';

interface ReportHeader {
  id: string;
  title?: string;
  createdAt: string;
  scope: Record<string, unknown>;
  from: string;
  to: string;
  interval: string;
  metrics: string[];
  devices: string[];
}
interface ScheduleView {
  id: string;
  name?: string;
  cadence: 'daily' | 'weekly';
  scope: Record<string, unknown>;
  metrics: string[];
  format: string;
  nextRunAt: string;
  lastReportId?: string;
}

const scopeText = (scope: Record<string, unknown>) =>
  'fleet' in scope
    ? 'the fleet'
    : 'tag' in scope
      ? `tag ${scope.tag}`
      : 'type' in scope
        ? `type ${scope.type}`
        : `${(scope.deviceIds as string[] | undefined)?.length ?? 0} devices`;

/** A report in a format, fetched with the key (a link cannot carry it) and handed to the browser as a file. */
async function download(api: Api, id: string, format: 'csv' | 'json') {
  const response = await api.fetch('report-generation', `/reports/${encodeURIComponent(id)}?format=${format}`);
  if (!response.ok) throw new Error(`the report answered ${response.status}`);
  const link = document.createElement('a');
  link.href = URL.createObjectURL(await response.blob());
  link.download = `${id}.${format}`;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

/** The report's own self-contained page, in a sandboxed frame (no script runs in it). */
function ReportView(props: { id: string | undefined; onClose(): void }) {
  const { api } = useSession();
  const [url, setUrl] = useState<string | undefined>();
  const [error, setError] = useState<unknown>();
  useEffect(() => {
    if (!props.id) return;
    let made: string | undefined;
    api.fetch('report-generation', `/reports/${encodeURIComponent(props.id)}?format=html`).then(async (response) => {
      if (!response.ok) throw new Error(`the report answered ${response.status}`);
      made = URL.createObjectURL(await response.blob());
      setUrl(made);
    }, setError);
    return () => {
      if (made) URL.revokeObjectURL(made);
      setUrl(undefined);
    };
  }, [api, props.id]);
  return (
    <Dialog title="Report" open={props.id !== undefined} onClose={props.onClose}>
      <ErrorNote error={error} />
      {url ? <iframe class="report-frame" title="The report" src={url} sandbox="" /> : <Loading what="the report" />}
    </Dialog>
  );
}

function scopeFrom(kind: string, value: string) {
  if (kind === 'fleet') return { fleet: true };
  if (kind === 'tag') return { tag: value };
  if (kind === 'type') return { type: value };
  return { deviceIds: parseTags(value) };
}

/** Reports: generate one, view its page, download CSV or JSON; schedules: list, create, delete. */
export function ReportsPage() {
  const { api, can } = useSession();
  const reports = useLoad(
    (signal) => api.get<Page<ReportHeader>>('report-generation', '/reports?limit=50', signal),
    [api],
  );
  const schedules = useLoad(
    (signal) => api.get<Page<ScheduleView>>('report-generation', '/report-schedules?limit=100', signal),
    [api],
  );
  const [viewing, setViewing] = useState<string | undefined>();
  const [form, setForm] = useState({ title: '', scope: 'fleet', scopeValue: '', metrics: '', hours: '24' });
  const [schedule, setSchedule] = useState({
    name: '',
    cadence: 'daily',
    scope: 'fleet',
    scopeValue: '',
    metrics: '',
    format: 'html',
  });
  const generate = useAction(async () => {
    const to = new Date();
    const from = new Date(to.getTime() - Number(form.hours) * 3_600_000);
    await api.request('report-generation', '/reports', {
      method: 'POST',
      body: {
        ...(form.title ? { title: form.title } : {}),
        scope: scopeFrom(form.scope, form.scopeValue),
        from: from.toISOString(),
        to: to.toISOString(),
        metrics: parseTags(form.metrics),
      },
    });
    reports.reload();
  });
  const createSchedule = useAction(async () => {
    await api.request('report-generation', '/report-schedules', {
      method: 'POST',
      body: {
        ...(schedule.name ? { name: schedule.name } : {}),
        cadence: schedule.cadence,
        scope: scopeFrom(schedule.scope, schedule.scopeValue),
        metrics: parseTags(schedule.metrics),
        format: schedule.format,
      },
    });
    schedules.reload();
  });
  const removeSchedule = useAction(async (id: string) => {
    if (!window.confirm('Delete this schedule?')) return;
    await api.request('report-generation', `/report-schedules/${encodeURIComponent(id)}`, { method: 'DELETE' });
    schedules.reload();
  });
  const fileAction = useAction(async (id: string, format: 'csv' | 'json') => download(api, id, format));
  const scopeFields = (
    value: { scope: string; scopeValue: string },
    set: (scope: string, scopeValue: string) => void,
  ) => (
    <>
      <Field label="Over">
        <select name="scope" value={value.scope} onChange={(e) => set(e.currentTarget.value, value.scopeValue)}>
          <option value="fleet">the whole fleet</option>
          <option value="tag">devices with a tag</option>
          <option value="type">devices of a type</option>
          <option value="devices">some devices</option>
        </select>
      </Field>
      {value.scope !== 'fleet' ? (
        <Field label={value.scope === 'devices' ? 'Device ids' : value.scope === 'tag' ? 'Tag' : 'Type'}>
          <input
            name="scopeValue"
            required
            value={value.scopeValue}
            onInput={(e) => set(value.scope, e.currentTarget.value)}
          />
        </Field>
      ) : null}
    </>
  );
  return (
    <>
      <PageTitle>Reports</PageTitle>
      {can.reportsWrite ? (
        <Section title="Generate a report">
          <form
            class="inline-form"
            onSubmit={(event) => {
              event.preventDefault();
              void generate.run();
            }}
          >
            <Field label="Title">
              <input
                name="title"
                value={form.title}
                onInput={(e) => setForm({ ...form, title: e.currentTarget.value })}
              />
            </Field>
            {scopeFields(form, (scope, scopeValue) => setForm({ ...form, scope, scopeValue }))}
            <Field label="Metrics" hint="comma separated">
              <input
                name="metrics"
                required
                value={form.metrics}
                onInput={(e) => setForm({ ...form, metrics: e.currentTarget.value })}
              />
            </Field>
            <Field label="Last">
              <select
                name="hours"
                value={form.hours}
                onChange={(e) => setForm({ ...form, hours: e.currentTarget.value })}
              >
                <option value="1">hour</option>
                <option value="24">24 hours</option>
                <option value="168">7 days</option>
                <option value="720">30 days</option>
              </select>
            </Field>
            <button type="submit" class="primary" disabled={generate.busy}>
              Generate
            </button>
          </form>
          <ErrorNote error={generate.error} />
        </Section>
      ) : null}
      <Section title="Reports">
        <ErrorNote error={reports.error ?? fileAction.error} />
        {!reports.data ? <Loading what="reports" /> : null}
        {reports.data?.items.length === 0 ? <p class="muted">No reports yet.</p> : null}
        {reports.data && reports.data.items.length > 0 ? (
          <div class="table-wrap">
            <table data-testid="reports-table">
              <caption class="visually-hidden">Reports, newest first</caption>
              <thead>
                <tr>
                  <th scope="col">Report</th>
                  <th scope="col">Over</th>
                  <th scope="col">Range</th>
                  <th scope="col">Metrics</th>
                  <th scope="col">Open</th>
                </tr>
              </thead>
              <tbody>
                {reports.data.items.map((report) => (
                  <tr key={report.id}>
                    <td>{report.title ?? report.id}</td>
                    <td>{scopeText(report.scope)}</td>
                    <td>
                      {formatTime(report.from)} – {formatTime(report.to)} ({report.interval})
                    </td>
                    <td>{report.metrics.join(', ')}</td>
                    <td class="row">
                      <button type="button" onClick={() => setViewing(report.id)}>
                        View
                      </button>
                      <button type="button" onClick={() => void fileAction.run(report.id, 'csv')}>
                        CSV
                      </button>
                      <button type="button" onClick={() => void fileAction.run(report.id, 'json')}>
                        JSON
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : null}
      </Section>
      <Section title="Schedules">
        <ErrorNote error={schedules.error ?? removeSchedule.error} />
        {schedules.data?.items.length === 0 ? <p class="muted">No schedules.</p> : null}
        {schedules.data && schedules.data.items.length > 0 ? (
          <ul class="plain">
            {schedules.data.items.map((entry) => (
              <li key={entry.id}>
                <strong>{entry.name ?? entry.id}</strong> · {entry.cadence} over {scopeText(entry.scope)} ·{' '}
                {entry.metrics.join(', ')} · {entry.format} · next {formatTime(entry.nextRunAt)}{' '}
                {entry.lastReportId ? (
                  <button type="button" onClick={() => setViewing(entry.lastReportId)}>
                    Last report
                  </button>
                ) : null}{' '}
                {can.reportsWrite ? (
                  <button type="button" class="danger" onClick={() => void removeSchedule.run(entry.id)}>
                    Delete
                  </button>
                ) : null}
              </li>
            ))}
          </ul>
        ) : null}
        {can.reportsWrite ? (
          <form
            class="inline-form"
            aria-label="New schedule"
            onSubmit={(event) => {
              event.preventDefault();
              void createSchedule.run();
            }}
          >
            <Field label="Schedule name">
              <input
                name="scheduleName"
                value={schedule.name}
                onInput={(e) => setSchedule({ ...schedule, name: e.currentTarget.value })}
              />
            </Field>
            <Field label="Every">
              <select
                name="cadence"
                value={schedule.cadence}
                onChange={(e) => setSchedule({ ...schedule, cadence: e.currentTarget.value })}
              >
                <option value="daily">day</option>
                <option value="weekly">week</option>
              </select>
            </Field>
            {scopeFields(schedule, (scope, scopeValue) => setSchedule({ ...schedule, scope, scopeValue }))}
            <Field label="Metrics" hint="comma separated">
              <input
                name="scheduleMetrics"
                required
                value={schedule.metrics}
                onInput={(e) => setSchedule({ ...schedule, metrics: e.currentTarget.value })}
              />
            </Field>
            <Field label="Format">
              <select
                name="format"
                value={schedule.format}
                onChange={(e) => setSchedule({ ...schedule, format: e.currentTarget.value })}
              >
                <option value="html">HTML</option>
                <option value="csv">CSV</option>
                <option value="json">JSON</option>
              </select>
            </Field>
            <button type="submit" class="primary" disabled={createSchedule.busy}>
              Add schedule
            </button>
            <ErrorNote error={createSchedule.error} />
          </form>
        ) : null}
      </Section>
      <ReportView id={viewing} onClose={() => setViewing(undefined)} />
    </>
  );
}
