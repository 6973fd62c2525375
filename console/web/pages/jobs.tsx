import { Link } from 'wouter-preact';
import { useLoad, useNow } from '../components/hooks.js';
import { PageTitle } from '../components/layout.js';
import { Badge, ErrorNote, Loading, Section, useAction } from '../components/ui.js';
import { formatAgo, formatPercent, formatTime } from '../logic/format.js';
import { useSession } from '../session.js';
import type { Page } from './types.js';

interface JobView {
  jobId: string;
  type: 'custom' | 'ota';
  description?: string;
  status: string;
  targetCount: number;
  currentRatePerMinute?: number;
  counts: Record<string, number>;
  createdAt: string;
  startedAt?: string;
  completedAt?: string;
  reasonCode?: string;
}

const DONE = ['SUCCEEDED', 'FAILED', 'TIMED_OUT', 'REJECTED', 'REMOVED', 'CANCELED'];

/** A rollout's progress: how many executions ended, how, and how many wait — as a bar and in words. */
function Progress(props: { job: JobView }) {
  const { counts, targetCount } = props.job;
  const finished = DONE.reduce((sum, status) => sum + (counts[status] ?? 0), 0);
  const failed = (counts.FAILED ?? 0) + (counts.TIMED_OUT ?? 0) + (counts.REJECTED ?? 0);
  const words = `${finished} of ${targetCount} done (${counts.SUCCEEDED ?? 0} succeeded, ${failed} failed), ${counts.IN_PROGRESS ?? 0} in progress, ${counts.QUEUED ?? 0} queued, ${counts.pending ?? 0} not released yet`;
  return (
    <div class="progress-cell">
      <progress
        max={Math.max(1, targetCount)}
        value={finished}
        aria-label={`Progress of ${props.job.jobId}`}
        aria-valuetext={words}
      />
      <span class="muted">{words}</span>
    </div>
  );
}

/** Fleet jobs and OTA rollouts, newest first, refreshed every 2 s while any is in flight. */
export function JobsPage() {
  const { api } = useSession();
  const jobs = useLoad((signal) => api.get<Page<JobView>>('jobs', '/jobs?limit=50', signal), [api], 2_000);
  const now = useNow(5_000);
  return (
    <>
      <PageTitle>Jobs</PageTitle>
      <ErrorNote error={jobs.error} />
      {!jobs.data ? <Loading what="jobs" /> : null}
      {jobs.data?.items.length === 0 ? <p class="muted">No jobs yet.</p> : null}
      {jobs.data && jobs.data.items.length > 0 ? (
        <div class="table-wrap">
          <table data-testid="jobs-table">
            <caption class="visually-hidden">Jobs, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Job</th>
                <th scope="col">Type</th>
                <th scope="col">Status</th>
                <th scope="col">Progress</th>
                <th scope="col">Created</th>
              </tr>
            </thead>
            <tbody>
              {jobs.data.items.map((job) => (
                <tr key={job.jobId}>
                  <td>
                    <Link href={`/jobs/${encodeURIComponent(job.jobId)}`}>{job.jobId}</Link>
                  </td>
                  <td>{job.type}</td>
                  <td>
                    <Badge status={job.status} />
                  </td>
                  <td>
                    <Progress job={job} />
                  </td>
                  <td>{formatAgo(job.createdAt, now)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </>
  );
}

/** One job: live progress and rate, its executions by status, its outcome report, cancel. */
export function JobPage(props: { id: string }) {
  const { api, can } = useSession();
  const path = `/jobs/${encodeURIComponent(props.id)}`;
  const job = useLoad((signal) => api.get<JobView>('jobs', path, signal), [api, props.id], 2_000);
  const timeline = useLoad(
    (signal) =>
      api.get<{ items: { at: string; kind: string; details?: Record<string, unknown> }[] }>(
        'jobs',
        `${path}/timeline`,
        signal,
      ),
    [api, props.id],
    5_000,
  );
  const cancel = useAction(async () => {
    if (!window.confirm(`Cancel job ${props.id}? Queued executions are removed; those in progress finish.`)) return;
    await api.request('jobs', `${path}/cancel`, { method: 'POST', body: {} });
    job.reload();
  });
  const openOutcome = useAction(async () => {
    const response = await api.fetch('report-generation', `${path}/outcome?format=html`);
    if (!response.ok) throw new Error(`the outcome report answered ${response.status}`);
    window.open(URL.createObjectURL(await response.blob()), '_blank', 'noopener');
  });
  const data = job.data;
  return (
    <>
      <PageTitle sub={<Link href="/jobs">All jobs</Link>}>{`Job ${props.id}`}</PageTitle>
      <ErrorNote error={job.error ?? cancel.error ?? openOutcome.error} />
      {!data ? <Loading what="the job" /> : null}
      {data ? (
        <Section
          title="Rollout"
          actions={
            <>
              {can.reportsRead ? (
                <button type="button" onClick={() => void openOutcome.run()}>
                  Outcome report
                </button>
              ) : null}
              {can.jobsWrite && (data.status === 'IN_PROGRESS' || data.status === 'SCHEDULED') ? (
                <button type="button" class="danger" onClick={() => void cancel.run()}>
                  Cancel job
                </button>
              ) : null}
            </>
          }
        >
          <p>
            <Badge status={data.status} /> {data.description ?? ''} · {data.type} · {data.targetCount} targets
            {data.currentRatePerMinute ? ` · releasing ${data.currentRatePerMinute} devices per minute` : ''}
            {data.reasonCode ? ` · ${data.reasonCode}` : ''}
          </p>
          <Progress job={data} />
          <dl class="facts">
            {Object.entries(data.counts).map(([status, n]) => (
              <>
                <dt key={`${status}-t`}>{status}</dt>
                <dd key={`${status}-d`}>
                  {n} ({formatPercent(n, data.targetCount)})
                </dd>
              </>
            ))}
          </dl>
          <p class="muted">
            Created {formatTime(data.createdAt)}
            {data.startedAt ? `, started ${formatTime(data.startedAt)}` : ''}
            {data.completedAt ? `, completed ${formatTime(data.completedAt)}` : ''}
          </p>
        </Section>
      ) : null}
      <Section title="Timeline">
        <ErrorNote error={timeline.error} />
        <ol class="plain">
          {(timeline.data?.items ?? []).slice(-30).map((entry) => (
            <li key={`${entry.at}-${entry.kind}`}>
              {formatTime(entry.at)} · {entry.kind}{' '}
              {entry.details ? <code>{JSON.stringify(entry.details)}</code> : null}
            </li>
          ))}
        </ol>
      </Section>
    </>
  );
}
