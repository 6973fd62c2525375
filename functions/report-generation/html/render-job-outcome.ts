import type { JobOutcome } from '../job-outcome.js';
import { escapeHtml, formatNumber } from './escape.js';
import { lineChart } from './svg-chart.js';

const STYLE = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1f24;margin:24px auto;max-width:900px;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
.meta{color:#57606a;margin:0 0 16px}table{border-collapse:collapse;width:100%;margin:8px 0}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:right}th:first-child,td:first-child{text-align:left}th{background:#f6f8fa}
.kpis{display:flex;gap:12px;flex-wrap:wrap}.kpi{border:1px solid #d0d7de;border-radius:6px;padding:8px 12px;min-width:110px}
.kpi b{display:block;font-size:20px}.chart{display:block;margin:8px 0;max-width:100%;height:auto}
.chart-title{font-size:13px;font-weight:600;fill:#1b1f24}.tick{font-size:11px;fill:#57606a}.empty{font-size:13px;fill:#57606a}
.grid{stroke:#eaeef2;stroke-width:1}.axis,.tickmark{stroke:#8c959f;stroke-width:1}
.band{fill:#0969da;fill-opacity:.15;stroke:none}.line{fill:none;stroke:#0969da;stroke-width:1.6;stroke-linejoin:round}.dot{fill:#0969da}
`;

const table = (headers: string[], rows: (string | number)[][]) =>
  `<table><tr>${headers.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr>${rows
    .map(
      (row) =>
        `<tr>${row.map((cell) => `<td>${typeof cell === 'number' ? formatNumber(cell) : escapeHtml(cell)}</td>`).join('')}</tr>`,
    )
    .join('')}</table>`;

/** A job's outcome as one self-contained, printable HTML page (no scripts, no external assets). */
export function renderJobOutcomeHtml(outcome: JobOutcome): string {
  const { job, counts } = outcome;
  const kpi = (label: string, value: number) =>
    `<div class="kpi">${escapeHtml(label)}<b>${formatNumber(value)}</b></div>`;
  const failed = (counts.FAILED ?? 0) + (counts.REJECTED ?? 0) + (counts.TIMED_OUT ?? 0);
  // Every minute from the first completion to the last, so the cumulative line has no gaps.
  const byMinute = new Map(outcome.completions.map((bucket) => [Date.parse(bucket.minute), bucket.succeeded]));
  const first = outcome.completions.length > 0 ? Date.parse(outcome.completions[0]!.minute) : 0;
  const last = outcome.completions.length > 0 ? Date.parse(outcome.completions.at(-1)!.minute) : 0;
  const points: { t: number; avg: number; min: number; max: number }[] = [];
  let cumulative = 0;
  for (let t = first; outcome.completions.length > 0 && t <= last; t += 60_000) {
    cumulative += byMinute.get(t) ?? 0;
    points.push({ t, avg: cumulative, min: cumulative, max: cumulative });
  }
  const ended = job.completedAt ? ` · ended ${escapeHtml(job.completedAt)}` : '';
  const meta = `${escapeHtml(job.description ?? `${job.type} job`)} · created ${escapeHtml(job.createdAt)}${ended}`;
  const pending = (counts.PENDING ?? 0) + (counts.QUEUED ?? 0) + (counts.IN_PROGRESS ?? 0);
  const kpis =
    kpi('executions', outcome.executions) +
    kpi('succeeded', counts.SUCCEEDED ?? 0) +
    kpi('failed', failed) +
    kpi('canceled', counts.CANCELED ?? 0) +
    kpi('still pending', pending);
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(`Job ${job.jobId}`)}</title><style>${STYLE}</style></head><body>
<h1>Job ${escapeHtml(job.jobId)} — ${escapeHtml(job.status)}${job.reasonCode ? ` (${escapeHtml(job.reasonCode)})` : ''}</h1>
<p class="meta">${meta}</p>
<div class="kpis">${kpis}</div>
<h2>Executions by status</h2>
${table(
  ['status', 'executions'],
  Object.entries(counts).sort(([a], [b]) => a.localeCompare(b)),
)}
<h2>Failures by reason</h2>
${
  outcome.failuresByReason.length === 0
    ? '<p class="meta">none</p>'
    : table(
        ['status', 'reason', 'executions'],
        outcome.failuresByReason.map((f) => [f.status, f.reason, f.count]),
      )
}
${
  outcome.retriedAttempts.length === 0
    ? ''
    : `<h2>Attempts that were retried</h2>${table(
        ['status', 'reason', 'attempts'],
        outcome.retriedAttempts.map((f) => [f.status, f.reason, f.count]),
      )}`
}
<h2>Progress</h2>
${lineChart(points, { title: 'Succeeded executions (cumulative, per minute)', bucketMs: 60_000, from: first, to: last + 60_000 })}
<h2>Timeline</h2>
${table(
  ['time', 'event', 'details'],
  outcome.timeline.map((e) => [e.at, e.kind, e.details ? JSON.stringify(e.details) : '']),
)}
</body></html>`;
}
